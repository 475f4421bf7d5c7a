import type Database from 'better-sqlite3';

/**
 * The settings every connection to the service's database takes, the main thread's and the
 * commit thread's alike: WAL, so readers never wait for the writer; synchronous=FULL, so a commit
 * acknowledged to a client survives a crash of the process or the machine.
 */
export function configureConnection(db: Database.Database): void {
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.pragma('busy_timeout = 5000');
  db.pragma('foreign_keys = ON');
}
