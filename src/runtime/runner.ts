import type { SimulateTask, SimulateTaskResult } from './simulate-worker.js';

/** The queue's state as /metrics shows it (the in-process pool has only a depth). */
export interface RunnerStats {
  waiting: number;
  active?: number;
  failed?: number;
  /** Jobs each worker completed since it registered (queue backend only). */
  workers?: Array<{ name: string; completed: number }>;
}

/**
 * Where twin simulations run. Two backends: the in-process worker-thread pool (the default, no
 * configuration) and BullMQ jobs on Redis (LORAPLAN_REDIS_URL), run by `loraplan worker`
 * processes on any machine that reaches the Redis. Every caller (searches, placements, checks,
 * dataset builds) submits through this one interface.
 */
export interface TwinRunner {
  /** Runs one scenario; aborting `signal` drops it if still queued (or stops it, in-process). */
  run(task: SimulateTask, signal?: AbortSignal): Promise<SimulateTaskResult>;
  /** Tasks waiting for a worker, as the runner last knew it (cheap, synchronous). */
  readonly queueSize: number;
  /** Why it cannot run work now, or undefined when it can. */
  notReady(): Promise<string | undefined>;
  stats(): Promise<RunnerStats>;
  /**
   * Starts the runner's threads and runs a short simulation on each, so the first request does
   * not pay for starting threads, loading the twin and compiling its step loop. Optional: a queue
   * backend's workers warm up in their own processes.
   */
  warmUp?(): Promise<void>;
  close(): Promise<void>;
}

/** A simulation job failed on every attempt: the request gets a problem naming the scenario. */
export class TwinJobFailedError extends Error {
  constructor(
    readonly jobId: string,
    readonly scenario: string,
    reason: string,
  ) {
    super(
      `the twin job for ${scenario} (job ${jobId.slice(0, 16)}) failed on every attempt: ${reason}`,
    );
  }
}

/** Redis cannot take the job: the request fails at once rather than waiting for it to return. */
export class QueueUnavailableError extends Error {}
