import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import Database from 'better-sqlite3';
import { PACKAGE_ROOT } from '../profiles/store.js';
import { configureConnection } from './connection.js';

export type Db = Database.Database;
export const MIGRATIONS_DIR = join(PACKAGE_ROOT, 'migrations');

/**
 * Opens the database in WAL mode with synchronous=FULL, so a commit acknowledged to a client
 * survives a crash of the process or the machine, and applies pending migrations in order.
 */
export function openDatabase(path: string, migrationsDir = MIGRATIONS_DIR): Db {
  if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
  const db = new Database(path);
  configureConnection(db);
  migrate(db, migrationsDir);
  return db;
}

export function migrate(db: Db, dir: string): string[] {
  db.exec(
    `CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)`,
  );
  const applied = new Set(
    db.prepare('SELECT name FROM schema_migrations').pluck().all() as string[],
  );
  const files = readdirSync(dir)
    .filter((f) => /^\d{3}_[a-z0-9_]+\.sql$/.test(f))
    .sort();
  const done: string[] = [];
  for (const file of files) {
    if (applied.has(file)) continue;
    const sql = readFileSync(join(dir, file), 'utf8');
    db.transaction(() => {
      db.exec(sql);
      db.prepare('INSERT INTO schema_migrations (name, applied_at) VALUES (?, ?)').run(
        file,
        new Date().toISOString(),
      );
    })();
    done.push(file);
  }
  return done;
}
