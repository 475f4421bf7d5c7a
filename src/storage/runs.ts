import { randomUUID } from 'node:crypto';
import type { Db } from './db.js';

export type RunKind = 'recommend' | 'simulate' | 'check';

export interface RunRecord {
  id: string;
  kind: RunKind;
  profile: string;
  method: string | null;
  status: string;
  request: unknown;
  response: unknown;
  twinVersion: string;
  modelVersion: string | null;
  createdAt: string;
  durationMs: number;
}

interface Row {
  id: string;
  seq: number;
  kind: RunKind;
  profile: string;
  method: string | null;
  status: string;
  request: string;
  response: string;
  twin_version: string;
  model_version: string | null;
  created_at: string;
  duration_ms: number;
}

const toRecord = (r: Row): RunRecord => ({
  id: r.id,
  kind: r.kind,
  profile: r.profile,
  method: r.method,
  status: r.status,
  request: JSON.parse(r.request) as unknown,
  response: JSON.parse(r.response) as unknown,
  twinVersion: r.twin_version,
  modelVersion: r.model_version,
  createdAt: r.created_at,
  durationMs: r.duration_ms,
});

export interface RunPage {
  runs: RunRecord[];
  nextCursor: string | null;
}

type NewRun = Omit<RunRecord, 'id' | 'createdAt'>;

/**
 * The runs table. Writes are group-committed: runs recorded in the same turn of the event loop
 * share one transaction, hence one fsync (WAL, synchronous=FULL), and each `insert` resolves only
 * after that commit, so a run acknowledged to a client is on disk without one fsync per request.
 */
export class RunRepository {
  private pending: Array<{
    record: RunRecord;
    resolve: (r: RunRecord) => void;
    reject: (e: unknown) => void;
  }> = [];
  private readonly insertStmt;

  constructor(
    private readonly db: Db,
    private readonly now: () => Date = () => new Date(),
  ) {
    this.insertStmt = db.prepare(
      `INSERT INTO runs (id, seq, kind, profile, method, status, request, response, twin_version, model_version, created_at, duration_ms)
       VALUES (?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM runs), ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
  }

  insert(run: NewRun): Promise<RunRecord> {
    const record: RunRecord = { ...run, id: randomUUID(), createdAt: this.now().toISOString() };
    return new Promise((resolve, reject) => {
      if (this.pending.length === 0) setImmediate(() => this.flush());
      this.pending.push({ record, resolve, reject });
    });
  }

  private flush(): void {
    const batch = this.pending;
    this.pending = [];
    try {
      this.db.transaction(() => {
        for (const { record: r } of batch) {
          this.insertStmt.run(
            r.id,
            r.kind,
            r.profile,
            r.method,
            r.status,
            JSON.stringify(r.request),
            JSON.stringify(r.response),
            r.twinVersion,
            r.modelVersion,
            r.createdAt,
            r.durationMs,
          );
        }
      })();
    } catch (e) {
      for (const p of batch) p.reject(e);
      return;
    }
    for (const p of batch) p.resolve(p.record);
  }

  get(id: string): RunRecord | null {
    const row = this.db.prepare('SELECT * FROM runs WHERE id = ?').get(id) as Row | undefined;
    return row ? toRecord(row) : null;
  }

  /** Newest first; the cursor is the seq of the last run returned (opaque to clients). */
  list(filter: { kind?: RunKind; profile?: string; limit: number; cursor?: string }): RunPage {
    const where: string[] = [];
    const args: Array<string | number> = [];
    if (filter.kind) {
      where.push('kind = ?');
      args.push(filter.kind);
    }
    if (filter.profile) {
      where.push('profile = ?');
      args.push(filter.profile);
    }
    if (filter.cursor) {
      where.push('seq < ?');
      args.push(decodeCursor(filter.cursor));
    }
    const rows = this.db
      .prepare(
        `SELECT * FROM runs ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY seq DESC LIMIT ?`,
      )
      .all(...args, filter.limit + 1) as Row[];
    const page = rows.slice(0, filter.limit);
    return {
      runs: page.map(toRecord),
      nextCursor: rows.length > filter.limit ? encodeCursor(page[page.length - 1]!.seq) : null,
    };
  }

  count(): number {
    return this.db.prepare('SELECT COUNT(*) FROM runs').pluck().get() as number;
  }
}

export class BadCursorError extends Error {}
const encodeCursor = (seq: number) => Buffer.from(`seq:${seq}`).toString('base64url');
function decodeCursor(cursor: string): number {
  const m = /^seq:(\d+)$/.exec(Buffer.from(cursor, 'base64url').toString());
  if (!m) throw new BadCursorError('cursor is not one this service issued');
  return Number(m[1]);
}
