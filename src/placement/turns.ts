/**
 * Gives the event loop a turn. A placement's closed-form work (estimates over hundreds of
 * adapters, for every GPU) runs between its twin calls on the server's one JavaScript thread;
 * sliced at each GPU or candidate, /healthz and other requests are answered in between. Waiters
 * are let through one per loop iteration: immediates queued together would otherwise all run in
 * one check phase, and twenty GPUs' slices would again be one long task. Only scheduling
 * changes; the answer does not.
 */
const waiting: Array<() => void> = [];

function letOneThrough(): void {
  waiting.shift()?.();
  if (waiting.length > 0) setImmediate(letOneThrough);
}

export function nextTurn(): Promise<void> {
  return new Promise((resolve) => {
    waiting.push(resolve);
    if (waiting.length === 1) setImmediate(letOneThrough);
  });
}
