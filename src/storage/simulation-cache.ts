import type { SimulationOutcome, SimulationStore } from '../search/index.js';
import type { Db } from './db.js';

/** The twin's results on disk, behind the in-memory LRU: they survive restarts. */
export class SqliteSimulationStore implements SimulationStore {
  private readonly getStmt;
  private readonly setStmt;
  constructor(db: Db) {
    this.getStmt = db.prepare('SELECT result FROM simulation_cache WHERE key = ?').pluck();
    this.setStmt = db.prepare(
      'INSERT OR REPLACE INTO simulation_cache (key, result, created_at) VALUES (?, ?, ?)',
    );
  }
  get(key: string): SimulationOutcome | undefined {
    const json = this.getStmt.get(key) as string | undefined;
    return json === undefined ? undefined : (JSON.parse(json) as SimulationOutcome);
  }
  set(key: string, value: SimulationOutcome): void {
    this.setStmt.run(key, JSON.stringify(value), new Date().toISOString());
  }
}
