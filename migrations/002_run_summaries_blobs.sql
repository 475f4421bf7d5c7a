-- Run lists read only small columns: each run gets its answer's key numbers as a small JSON
-- summary, and large request and response bodies move to content-addressed blobs (stored once
-- however many runs carry them). Retention deletes by creation time.
ALTER TABLE runs ADD COLUMN summary TEXT NOT NULL DEFAULT '{}';
ALTER TABLE runs ADD COLUMN request_blob TEXT;
ALTER TABLE runs ADD COLUMN response_blob TEXT;

CREATE TABLE blobs (
  hash TEXT PRIMARY KEY,                 -- sha256 of content
  content TEXT NOT NULL,
  created_at TEXT NOT NULL
);

CREATE INDEX runs_created_at ON runs (created_at);
CREATE INDEX runs_request_blob ON runs (request_blob) WHERE request_blob IS NOT NULL;
CREATE INDEX runs_response_blob ON runs (response_blob) WHERE response_blob IS NOT NULL;

-- Summaries of the runs stored before this migration.
UPDATE runs SET summary = json_object(
  'concurrentAdapters', json_extract(response, '$.recommendation.concurrentAdapters'),
  'parallelAdapters', json_extract(response, '$.recommendation.parallelAdapters'),
  'maxLoraRank', json_extract(response, '$.recommendation.maxLoraRank'),
  'throughputTokensPerSecond', json_extract(response, '$.recommendation.throughputTokensPerSecond'),
  'offeredTokensPerSecond', json_extract(response, '$.recommendation.offeredTokensPerSecond'),
  'starving', json(CASE json_extract(response, '$.recommendation.starving') WHEN 1 THEN 'true' ELSE 'false' END)
) WHERE kind = 'recommend';
UPDATE runs SET summary = json_object(
  'throughputTokensPerSecond', json_extract(response, '$.throughputTokensPerSecond'),
  'offeredTokensPerSecond', json_extract(response, '$.offeredTokensPerSecond'),
  'starving', json(CASE json_extract(response, '$.starving') WHEN 1 THEN 'true' ELSE 'false' END),
  'feasible', json(CASE json_extract(response, '$.feasible') WHEN 1 THEN 'true' ELSE 'false' END)
) WHERE kind = 'simulate';
UPDATE runs SET summary = json_object(
  'throughputTokensPerSecond', json_extract(response, '$.result.throughputTokensPerSecond'),
  'offeredTokensPerSecond', json_extract(response, '$.result.offeredTokensPerSecond'),
  'starving', json(CASE json_extract(response, '$.result.starving') WHEN 1 THEN 'true' ELSE 'false' END),
  'feasible', json(CASE json_extract(response, '$.result.feasible') WHEN 1 THEN 'true' ELSE 'false' END)
) WHERE kind = 'check';
