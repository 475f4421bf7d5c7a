-- Derived (and later calibrated) profiles posted to /v1/profiles, under their content-hashed id:
-- posting the same inputs again finds the same row.
CREATE TABLE profiles (
  id TEXT PRIMARY KEY,
  evidence TEXT NOT NULL CHECK (evidence IN ('derived', 'calibrated')),
  content TEXT NOT NULL,
  created_at TEXT NOT NULL
);
