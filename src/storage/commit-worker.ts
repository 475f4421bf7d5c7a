// The commit thread: the runs table's writes, each transaction's fsync included, off the thread
// that answers requests. Messages are taken in order, so commits and retention steps never race.
import { parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';
import { configureConnection } from './connection.js';
import { RunWrites, type PruneOrder, type RunRow } from './run-writes.js';

export type CommitMessage =
  | { id: number; op: 'commit'; rows: RunRow[] }
  | { id: number; op: 'prune'; order: PruneOrder }
  | { id: number; op: 'close' };
export type CommitReply =
  | { id: number; ok: true; value: number }
  | { id: number; ok: false; message: string; code?: string };

const { path } = workerData as { path: string };
const db = new Database(path);
configureConnection(db);
const writes = new RunWrites(db);
const port = parentPort!;

port.on('message', (m: CommitMessage) => {
  if (m.op === 'close') {
    db.close();
    port.postMessage({ id: m.id, ok: true, value: 0 } satisfies CommitReply);
    port.close();
    return;
  }
  let reply: CommitReply;
  try {
    const value =
      m.op === 'commit' ? (writes.commit(m.rows), m.rows.length) : writes.prune(m.order);
    reply = { id: m.id, ok: true, value };
  } catch (e) {
    const err = e as { message?: string; code?: unknown };
    reply = {
      id: m.id,
      ok: false,
      message: err.message ?? String(e),
      ...(typeof err.code === 'string' ? { code: err.code } : {}),
    };
  }
  port.postMessage(reply);
});
