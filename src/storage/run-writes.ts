import type { Db } from './db.js';

/** One run as it is written: bodies already serialised, large ones as blobs named by hash. */
export interface RunRow {
  id: string;
  kind: string;
  profile: string;
  method: string | null;
  verdict: string;
  summary: string;
  /** Inline JSON, or '' when `requestBlob` names the blob that holds it. */
  request: string;
  requestBlob: string | null;
  response: string;
  responseBlob: string | null;
  /** [hash, content] of the blobs this run refers to; stored once however many runs carry them. */
  blobs: Array<[string, string]>;
  twinVersion: string;
  modelVersion: string | null;
  createdAt: string;
  durationMs: number;
}

/** Rows deleted per transaction by retention: each is a few milliseconds, so requests interleave. */
export const PRUNE_BATCH = 500;

export interface PruneOrder {
  /** Runs created before this ISO time are deleted. */
  cutoff: string;
  /** Only the newest this many runs are kept. */
  maxRows: number;
}

/**
 * The runs table's writes, on whichever connection is given: the service runs them on its commit
 * thread (src/storage/commit-worker.ts), an in-memory database on the main thread.
 */
export class RunWrites {
  private readonly insertRun;
  private readonly insertBlob;
  private readonly deleteOld;
  private readonly newestBeyond;
  private readonly deleteUpTo;
  private readonly deleteOrphanBlobs;

  constructor(private readonly db: Db) {
    this.insertRun = db.prepare(
      `INSERT INTO runs (id, seq, kind, profile, method, status, summary, request, response, request_blob, response_blob, twin_version, model_version, created_at, duration_ms)
       VALUES (?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM runs), ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    this.insertBlob = db.prepare(
      'INSERT OR IGNORE INTO blobs (hash, content, created_at) VALUES (?, ?, ?)',
    );
    this.deleteOld = db.prepare(
      'DELETE FROM runs WHERE seq IN (SELECT seq FROM runs WHERE created_at < ? ORDER BY seq LIMIT ?)',
    );
    this.newestBeyond = db
      .prepare('SELECT seq FROM runs ORDER BY seq DESC LIMIT 1 OFFSET ?')
      .pluck();
    this.deleteUpTo = db.prepare(
      'DELETE FROM runs WHERE seq IN (SELECT seq FROM runs WHERE seq <= ? ORDER BY seq LIMIT ?)',
    );
    this.deleteOrphanBlobs = db.prepare(
      `DELETE FROM blobs WHERE hash IN (
         SELECT hash FROM blobs b
         WHERE NOT EXISTS (SELECT 1 FROM runs WHERE request_blob = b.hash)
           AND NOT EXISTS (SELECT 1 FROM runs WHERE response_blob = b.hash)
         LIMIT ?)`,
    );
  }

  /** All rows in one transaction: one fsync for the batch, and none of it if any row fails. */
  commit(rows: readonly RunRow[]): void {
    this.db.transaction(() => {
      for (const r of rows) {
        for (const [hash, content] of r.blobs) this.insertBlob.run(hash, content, r.createdAt);
        this.insertRun.run(
          r.id,
          r.kind,
          r.profile,
          r.method,
          r.verdict,
          r.summary,
          r.request,
          r.response,
          r.requestBlob,
          r.responseBlob,
          r.twinVersion,
          r.modelVersion,
          r.createdAt,
          r.durationMs,
        );
      }
    })();
  }

  /**
   * One bounded step of retention: at most PRUNE_BATCH runs that are too old or beyond the newest
   * `maxRows`, then blobs no run refers to any more. Returns the rows deleted.
   */
  prune(order: PruneOrder): number {
    return this.db.transaction(() => {
      const byAge = this.deleteOld.run(order.cutoff, PRUNE_BATCH).changes;
      const keepFrom = this.newestBeyond.get(order.maxRows) as number | undefined;
      const byCount =
        keepFrom === undefined ? 0 : this.deleteUpTo.run(keepFrom, PRUNE_BATCH).changes;
      const blobs = this.deleteOrphanBlobs.run(PRUNE_BATCH).changes;
      return byAge + byCount + blobs;
    })();
  }
}
