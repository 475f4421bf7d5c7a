import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Piscina } from 'piscina';
import { scenarioSchema } from '../twin/index.js';
import type { RunnerStats, TwinRunner } from './runner.js';
import type { SimulateTask, SimulateTaskResult } from './simulate-worker.js';

export interface PoolOptions {
  threads?: number;
  /** Tasks that may wait for a thread; one more is refused with PoolSaturatedError. */
  maxQueue?: number;
}

/** Every thread is busy and the queue is full: the caller should retry later (HTTP 503). */
export class PoolSaturatedError extends Error {
  constructor(
    readonly queued: number,
    work = 'simulations',
    pool = 'the twin worker pool',
  ) {
    super(`${pool} is saturated (${queued} ${work} queued); retry shortly`);
  }
}

/**
 * A Piscina pool of `threads` threads running the default export of `./<worker>.ts` in this
 * folder. Compiled, threads enter through a CommonJS file that import()s the ES-module worker (see
 * simulate-worker-entry.cts). From source under tsx, tsx's require hook compiles the worker to
 * CommonJS itself, so it is loaded directly.
 */
export function workerPool<Task, Result>(worker: string, threads: number): Piscina<Task, Result> {
  const fromSource = import.meta.url.endsWith('.ts');
  const entry = fromSource ? `./${worker}.ts` : './simulate-worker-entry.cjs';
  return new Piscina<Task, Result>({
    filename: fileURLToPath(new URL(entry, import.meta.url)),
    workerData: { workerModuleUrl: new URL(`./${worker}.js`, import.meta.url).href },
    minThreads: threads,
    maxThreads: threads,
    execArgv: fromSource ? [...process.execArgv, '--import', 'tsx'] : process.execArgv,
  });
}

/**
 * Not a fact of any deployment, only load: ten simulated minutes of a shipped profile with
 * preemption, slot churn and chunked prefill enough to exercise every path of the step loop.
 */
const warmUpTasks = (): SimulateTask[] =>
  [
    // Serving: many adapters, slots churning, the max_loras admission rule at work.
    { rates: [0.4, 0.05, 0.0125], ranks: [8, 16, 16], maxCpuLoras: 160, maxLoras: 64 },
    // Overloaded: KV cache short, preemption, a queue that grows.
    { rates: [3.2, 1.6, 0.025], ranks: [16], maxCpuLoras: 96, maxLoras: 32 },
  ].map((w) => ({
    scenario: scenarioSchema.parse({
      profile: 'h100-64gb/llama-3.1-8b-instruct',
      config: { maxLoras: w.maxLoras, maxCpuLoras: w.maxCpuLoras, maxLoraRank: 16 },
      workload: { rates: w.rates, ranks: w.ranks },
      durationSeconds: 3600,
      seed: 1,
    }),
  }));

/**
 * A worker-thread pool for twin simulations; works from compiled JS and from TS under tsx/vitest.
 * No thread starts until the first simulation is asked for: a command that needs none (the
 * forest's answer) never spawns one, so it never has to tear down a thread that is still loading.
 */
export class SimulationPool implements TwinRunner {
  private pool: Piscina<SimulateTask, SimulateTaskResult> | undefined;
  readonly threads: number;
  private readonly maxQueue: number;

  constructor(options: PoolOptions = {}) {
    this.threads = options.threads ?? Math.max(1, availableParallelism());
    this.maxQueue = options.maxQueue ?? Infinity;
  }

  private started(): Piscina<SimulateTask, SimulateTaskResult> {
    if (this.pool) return this.pool;
    this.pool = workerPool<SimulateTask, SimulateTaskResult>('simulate-worker', this.threads);
    return this.pool;
  }

  /**
   * One warm-up simulation per thread, side by side. A fresh thread runs its first simulations
   * several times slower than later ones (thread start, module load, then V8 compiling and
   * recompiling the step loop), which a cold `auto` answer of five simulations felt as 2.3 s
   * against 0.7 s on warm threads (docs/performance.md).
   */
  async warmUp(): Promise<void> {
    const pool = this.started();
    for (const task of warmUpTasks())
      await Promise.all(Array.from({ length: this.threads }, () => pool.run(task)));
  }

  /** Simulations waiting for a thread. */
  get queueSize(): number {
    return this.pool?.queueSize ?? 0;
  }

  /**
   * Runs one simulation. Refuses with PoolSaturatedError (our own admission check, not piscina's
   * untyped queue error) when maxQueue tasks already wait. Aborting `signal` drops a queued task
   * or terminates the thread running it, so abandoned work does not hold up the next request.
   */
  run(task: SimulateTask, signal?: AbortSignal): Promise<SimulateTaskResult> {
    const pool = this.started();
    if (pool.queueSize >= this.maxQueue)
      return Promise.reject(new PoolSaturatedError(pool.queueSize));
    return pool.run(task, signal ? { signal } : {});
  }

  notReady(): Promise<string | undefined> {
    return Promise.resolve(this.threads > 0 ? undefined : 'the worker pool has no threads');
  }

  stats(): Promise<RunnerStats> {
    return Promise.resolve({ waiting: this.queueSize });
  }

  async close(): Promise<void> {
    const pool = this.pool;
    this.pool = undefined;
    await pool?.destroy();
  }
}
