-- Every request the service answered, with what was asked and what was answered.
CREATE TABLE runs (
  id TEXT PRIMARY KEY,
  seq INTEGER NOT NULL UNIQUE,          -- insertion order, for stable newest-first cursors
  kind TEXT NOT NULL CHECK (kind IN ('recommend', 'simulate', 'check')),
  profile TEXT NOT NULL,
  method TEXT,
  status TEXT NOT NULL,                  -- 'ok', or the verdict of a check
  request TEXT NOT NULL,                 -- JSON
  response TEXT NOT NULL,                -- JSON
  twin_version TEXT NOT NULL,
  model_version TEXT,
  created_at TEXT NOT NULL,              -- ISO 8601
  duration_ms REAL NOT NULL
);
CREATE INDEX runs_kind_profile_seq ON runs (kind, profile, seq DESC);
CREATE INDEX runs_profile_seq ON runs (profile, seq DESC);

-- Twin results by canonical scenario hash (profile content, twin version, scenario, threshold).
CREATE TABLE simulation_cache (
  key TEXT PRIMARY KEY,
  result TEXT NOT NULL,
  created_at TEXT NOT NULL
);
