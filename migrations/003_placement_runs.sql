-- Placements are stored as runs too. SQLite cannot change a CHECK constraint in place, so the
-- table is rebuilt with the same columns and rows, and its indexes recreated.
CREATE TABLE runs_new (
  id TEXT PRIMARY KEY,
  seq INTEGER NOT NULL UNIQUE,
  kind TEXT NOT NULL CHECK (kind IN ('recommend', 'simulate', 'check', 'placement')),
  profile TEXT NOT NULL,
  method TEXT,
  status TEXT NOT NULL,
  request TEXT NOT NULL,
  response TEXT NOT NULL,
  twin_version TEXT NOT NULL,
  model_version TEXT,
  created_at TEXT NOT NULL,
  duration_ms REAL NOT NULL,
  summary TEXT NOT NULL DEFAULT '{}',
  request_blob TEXT,
  response_blob TEXT
);
INSERT INTO runs_new (id, seq, kind, profile, method, status, request, response, twin_version,
  model_version, created_at, duration_ms, summary, request_blob, response_blob)
SELECT id, seq, kind, profile, method, status, request, response, twin_version, model_version,
  created_at, duration_ms, summary, request_blob, response_blob FROM runs;
DROP TABLE runs;
ALTER TABLE runs_new RENAME TO runs;
CREATE INDEX runs_kind_profile_seq ON runs (kind, profile, seq DESC);
CREATE INDEX runs_profile_seq ON runs (profile, seq DESC);
CREATE INDEX runs_created_at ON runs (created_at);
CREATE INDEX runs_request_blob ON runs (request_blob) WHERE request_blob IS NOT NULL;
CREATE INDEX runs_response_blob ON runs (response_blob) WHERE response_blob IS NOT NULL;
