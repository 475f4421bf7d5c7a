import { createHash, randomUUID } from 'node:crypto';
import type { Db } from './db.js';
import { committerFor, type RunCommitter } from './committer.js';
import type { RunRow } from './run-writes.js';

export type RunKind = 'recommend' | 'simulate' | 'check' | 'placement';

/** An answer's key numbers, small enough to list thousands of runs. */
export type RunKeyNumbers = Record<string, number | boolean | string | null>;

/** What a run list shows: never the stored request or response. */
export interface RunSummary {
  id: string;
  kind: RunKind;
  profile: string;
  method: string | null;
  /** 'ok', or the verdict of a check. */
  verdict: string;
  summary: RunKeyNumbers;
  twinVersion: string;
  modelVersion: string | null;
  createdAt: string;
  durationMs: number;
}

export interface RunRecord extends RunSummary {
  request: unknown;
  response: unknown;
}

interface SummaryRow {
  id: string;
  seq: number;
  kind: RunKind;
  profile: string;
  method: string | null;
  status: string;
  summary: string;
  twin_version: string;
  model_version: string | null;
  created_at: string;
  duration_ms: number;
}
interface FullRow extends SummaryRow {
  request: string;
  response: string;
}

const SUMMARY_COLUMNS = [
  'id',
  'seq',
  'kind',
  'profile',
  'method',
  'status',
  'summary',
  'twin_version',
  'model_version',
  'created_at',
  'duration_ms',
]
  .map((c) => `runs.${c}`)
  .join(', ');

const toSummary = (r: SummaryRow): RunSummary => ({
  id: r.id,
  kind: r.kind,
  profile: r.profile,
  method: r.method,
  verdict: r.status,
  summary: JSON.parse(r.summary) as RunKeyNumbers,
  twinVersion: r.twin_version,
  modelVersion: r.model_version,
  createdAt: r.created_at,
  durationMs: r.duration_ms,
});

export interface RunPage {
  runs: RunSummary[];
  nextCursor: string | null;
}

export type NewRun = Omit<RunRecord, 'id' | 'createdAt'>;

/**
 * Request and response bodies above this size are stored once per content hash in `blobs`: a
 * client that sends the same large empirical length sample a hundred times stores it once.
 */
export const INLINE_BODY_LIMIT_BYTES = 4096;

/** A run as the commit thread writes it: bodies serialised here, large ones as blobs by hash. */
function toRow(r: RunRecord): RunRow {
  const blobs: Array<[string, string]> = [];
  const body = (value: unknown): [string, string | null] => {
    const json = JSON.stringify(value) ?? 'null';
    if (json.length <= INLINE_BODY_LIMIT_BYTES) return [json, null];
    const hash = createHash('sha256').update(json).digest('hex');
    blobs.push([hash, json]);
    return ['', hash];
  };
  const [request, requestBlob] = body(r.request);
  const [response, responseBlob] = body(r.response);
  return {
    id: r.id,
    kind: r.kind,
    profile: r.profile,
    method: r.method,
    verdict: r.verdict,
    summary: JSON.stringify(r.summary),
    request,
    requestBlob,
    response,
    responseBlob,
    blobs,
    twinVersion: r.twinVersion,
    modelVersion: r.modelVersion,
    createdAt: r.createdAt,
    durationMs: r.durationMs,
  };
}

export interface RetentionPolicy {
  /** Runs older than this are deleted. */
  maxAgeDays: number;
  /** Only the newest this many runs are kept. */
  maxRows: number;
}

/**
 * The runs table. Writes are group-committed: the runs recorded while one batch is being written
 * make the next batch, one transaction and one fsync (WAL, synchronous=FULL), and each `insert`
 * resolves only after its batch has committed, so a run acknowledged to a client is on disk
 * without one fsync per request. For a database file the writes run on a commit thread of their
 * own (src/storage/committer.ts); reads stay on the caller's connection, which sees every
 * committed batch.
 */
export class RunRepository {
  private pending: Array<{
    record: RunRecord;
    resolve: (r: RunRecord) => void;
    reject: (e: unknown) => void;
  }> = [];
  private flushScheduled = false;
  private writing: Promise<void> | undefined;
  private readonly committer: RunCommitter;

  constructor(
    private readonly db: Db,
    private readonly now: () => Date = () => new Date(),
    committer?: RunCommitter,
  ) {
    this.committer = committer ?? committerFor(db);
  }

  insert(run: NewRun): Promise<RunRecord> {
    const record: RunRecord = { ...run, id: randomUUID(), createdAt: this.now().toISOString() };
    return new Promise((resolve, reject) => {
      this.pending.push({ record, resolve, reject });
      this.scheduleFlush();
    });
  }

  /** At most one batch in flight: what arrives meanwhile waits for it and goes in the next. */
  private scheduleFlush(): void {
    if (this.flushScheduled || this.writing || this.pending.length === 0) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      this.writing = this.flush().finally(() => {
        this.writing = undefined;
        this.scheduleFlush();
      });
    });
  }

  private async flush(): Promise<void> {
    const batch = this.pending;
    this.pending = [];
    try {
      await this.committer.commit(batch.map(({ record }) => toRow(record)));
    } catch (e) {
      for (const p of batch) p.reject(e);
      return;
    }
    for (const p of batch) p.resolve(p.record);
  }

  /** Waits for every insert already made to commit (or fail), then stops the commit thread. */
  async close(): Promise<void> {
    while (this.pending.length > 0 || this.writing || this.flushScheduled) {
      await (this.writing ?? new Promise((r) => setImmediate(r)));
    }
    await this.committer.close();
  }

  get(id: string): RunRecord | null {
    const row = this.db
      .prepare(
        `SELECT ${SUMMARY_COLUMNS},
           COALESCE(q.content, runs.request) AS request,
           COALESCE(a.content, runs.response) AS response
         FROM runs
         LEFT JOIN blobs q ON q.hash = runs.request_blob
         LEFT JOIN blobs a ON a.hash = runs.response_blob
         WHERE runs.id = ?`,
      )
      .get(id) as FullRow | undefined;
    if (!row) return null;
    return {
      ...toSummary(row),
      request: JSON.parse(row.request) as unknown,
      response: JSON.parse(row.response) as unknown,
    };
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
        `SELECT ${SUMMARY_COLUMNS} FROM runs ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY seq DESC LIMIT ?`,
      )
      .all(...args, filter.limit + 1) as SummaryRow[];
    const page = rows.slice(0, filter.limit);
    return {
      runs: page.map(toSummary),
      nextCursor: rows.length > filter.limit ? encodeCursor(page[page.length - 1]!.seq) : null,
    };
  }

  count(): number {
    return this.db.prepare('SELECT COUNT(*) FROM runs').pluck().get() as number;
  }

  /**
   * One bounded step of retention: deletes at most PRUNE_BATCH runs that are too old or beyond
   * the newest `maxRows`, then blobs no run refers to any more. Resolves to the rows deleted; call
   * again until it is 0 (the background pruner yields to requests between calls).
   */
  pruneStep(policy: RetentionPolicy): Promise<number> {
    const cutoff = new Date(this.now().getTime() - policy.maxAgeDays * 86_400_000).toISOString();
    return this.committer.prune({ cutoff, maxRows: policy.maxRows });
  }

  blobCount(): number {
    return this.db.prepare('SELECT COUNT(*) FROM blobs').pluck().get() as number;
  }
}

/**
 * Applies a retention policy in the background: every `intervalMs`, prune steps run one per turn
 * of the event loop until nothing is left to delete, so requests are never blocked for long.
 */
export function startRetention(
  runs: RunRepository,
  policy: RetentionPolicy,
  intervalMs: number,
  onError: (e: unknown) => void,
): { stop: () => void; idle: () => Promise<void> } {
  let running: Promise<void> = Promise.resolve();
  let stopped = false;
  const sweep = () =>
    new Promise<void>((resolve) => {
      const step = () => {
        if (stopped) return resolve();
        runs.pruneStep(policy).then(
          (deleted) => (deleted > 0 ? setImmediate(step) : resolve()),
          (e: unknown) => {
            onError(e);
            resolve();
          },
        );
      };
      setImmediate(step);
    });
  const tick = () => {
    running = running.then(sweep);
  };
  tick();
  const timer = setInterval(tick, intervalMs);
  timer.unref();
  return {
    stop: () => {
      stopped = true;
      clearInterval(timer);
    },
    idle: () => running,
  };
}

export class BadCursorError extends Error {}
const encodeCursor = (seq: number) => Buffer.from(`seq:${seq}`).toString('base64url');
function decodeCursor(cursor: string): number {
  const m = /^seq:(\d+)$/.exec(Buffer.from(cursor, 'base64url').toString());
  if (!m) throw new BadCursorError('cursor is not one this service issued');
  return Number(m[1]);
}
