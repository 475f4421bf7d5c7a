import { Worker } from 'node:worker_threads';
import type { Db } from './db.js';
import { RunWrites, type PruneOrder, type RunRow } from './run-writes.js';
import type { CommitMessage, CommitReply } from './commit-worker.js';

/** Where the runs table's writes run; each promise settles once its transaction has committed. */
export interface RunCommitter {
  commit(rows: RunRow[]): Promise<void>;
  prune(order: PruneOrder): Promise<number>;
  close(): Promise<void>;
}

/** On the calling thread: an in-memory database has no other connection to write through. */
export function inThreadCommitter(db: Db): RunCommitter {
  const writes = new RunWrites(db);
  return {
    commit: async (rows) => writes.commit(rows),
    prune: async (order) => writes.prune(order),
    close: async () => {},
  };
}

/** A commit failed on the commit thread; `code` is SQLite's (SQLITE_FULL, SQLITE_BUSY, ...). */
export class CommitError extends Error {
  constructor(
    message: string,
    readonly code?: string,
  ) {
    super(message);
  }
}

/**
 * On a thread of its own, with its own connection to the database file: a commit's fsync (several
 * milliseconds, synchronous=FULL) no longer holds up the thread that parses and answers requests,
 * and while one batch is being written the next one gathers. The thread starts at the first
 * write, holds the process open only while writes are in flight, and is started again if it dies
 * (the writes it had are rejected, never acknowledged).
 */
export class WorkerCommitter implements RunCommitter {
  private worker: Worker | undefined;
  private nextId = 0;
  private readonly waiting = new Map<
    number,
    { resolve: (value: number) => void; reject: (e: unknown) => void }
  >();

  constructor(private readonly path: string) {}

  private started(): Worker {
    if (this.worker) return this.worker;
    const worker = import.meta.url.endsWith('.ts')
      ? // From source (tsx, vitest): tsx's hooks registered in the thread before the worker loads.
        new Worker(
          `import('tsx/esm/api').then((tsx) => { tsx.register(); return import(${JSON.stringify(new URL('./commit-worker.ts', import.meta.url).href)}); });`,
          { eval: true, workerData: { path: this.path } },
        )
      : new Worker(new URL('./commit-worker.js', import.meta.url), {
          workerData: { path: this.path },
        });
    worker.on('message', (reply: CommitReply) => {
      const waiter = this.waiting.get(reply.id);
      if (!waiter) return;
      this.waiting.delete(reply.id);
      if (this.waiting.size === 0) worker.unref();
      if (reply.ok) waiter.resolve(reply.value);
      else waiter.reject(new CommitError(reply.message, reply.code));
    });
    const failAll = (e: unknown) => {
      if (this.worker === worker) this.worker = undefined;
      for (const waiter of this.waiting.values()) waiter.reject(e);
      this.waiting.clear();
    };
    worker.on('error', failAll);
    worker.on('exit', (code) => failAll(new CommitError(`the commit thread exited (${code})`)));
    worker.unref();
    this.worker = worker;
    return worker;
  }

  private send(message: CommitMessage): Promise<number> {
    const worker = this.started();
    return new Promise<number>((resolve, reject) => {
      this.waiting.set(message.id, { resolve, reject });
      worker.ref();
      worker.postMessage(message);
    });
  }

  async commit(rows: RunRow[]): Promise<void> {
    await this.send({ id: this.nextId++, op: 'commit', rows });
  }

  prune(order: PruneOrder): Promise<number> {
    return this.send({ id: this.nextId++, op: 'prune', order });
  }

  /** Waits for the writes already sent, then closes the thread's connection. */
  async close(): Promise<void> {
    const worker = this.worker;
    if (!worker) return;
    const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
    await this.send({ id: this.nextId++, op: 'close' });
    await exited;
  }
}

/** Off the main thread for a database file, on it for an in-memory one. */
export function committerFor(db: Db): RunCommitter {
  return db.memory ? inThreadCommitter(db) : new WorkerCommitter(db.name);
}
