import { hostname } from 'node:os';
import { Queue, QueueEvents, Worker, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import { loadProfile } from '../profiles/store.js';
import { evidenceOf } from '../twin/profile.js';
import { simulationKey } from '../search/cache.js';
import { DEFAULT_STARVATION_THRESHOLD } from '../twin/index.js';
import {
  QueueUnavailableError,
  TwinJobFailedError,
  type RunnerStats,
  type TwinRunner,
} from './runner.js';
import type { SimulateTask, SimulateTaskResult } from './simulate-worker.js';

export const QUEUE_NAME = 'loraplan-twin';
/** Redis hash: jobs completed per worker name (for per-worker throughput in /metrics). */
const COMPLETED_KEY = 'loraplan:twin:completed-by-worker';

export interface QueueOptions {
  /** Attempts per job (a killed worker's job counts one), with exponential backoff. */
  attempts?: number;
  backoffMs?: number;
}

const describeScenario = (task: SimulateTask) =>
  `${task.scenario.profile} with max_loras=${task.scenario.config.maxLoras}, max_cpu_loras=${task.scenario.config.maxCpuLoras}, max_lora_rank=${task.scenario.config.maxLoraRank}`;

/** Rejects with the signal's reason when it aborts first. */
function untilAborted<T>(work: Promise<T>, signal?: AbortSignal): Promise<T> {
  if (!signal) return work;
  if (signal.aborted) return Promise.reject(signal.reason as Error);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason as Error);
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e as Error);
      },
    );
  });
}

/**
 * Twin work as BullMQ jobs. The job id is the scenario's cache key (scenario, profile content,
 * twin version, threshold), so the same simulation asked by several requests or several service
 * instances is one job: later askers wait on it, or get its stored result. A queued job whose
 * askers all give up (time limit, client gone) is removed; a running one finishes and its result
 * stays for the next asker.
 */
export class QueueRunner implements TwinRunner {
  private readonly producer: Redis;
  private readonly eventsConnection: Redis;
  private readonly queue: Queue<SimulateTask, SimulateTaskResult>;
  private readonly events: QueueEvents;
  private waiting = 0;
  private readonly attempts: number;
  private readonly backoffMs: number;

  constructor(
    readonly url: string,
    options: QueueOptions = {},
  ) {
    // The producer fails fast while Redis is away (no offline queue): a request is refused, not
    // parked. The event reader blocks on a stream, so it retries forever.
    this.producer = new Redis(url, { enableOfflineQueue: false, maxRetriesPerRequest: 1 });
    this.eventsConnection = new Redis(url, { maxRetriesPerRequest: null });
    this.producer.on('error', () => undefined);
    this.eventsConnection.on('error', () => undefined);
    this.queue = new Queue(QUEUE_NAME, { connection: this.producer });
    this.queue.on('error', () => undefined);
    // Every job in flight listens for the queue closing: a search has dozens at once.
    this.queue.setMaxListeners(0);
    this.events = new QueueEvents(QUEUE_NAME, { connection: this.eventsConnection });
    this.events.on('error', () => undefined);
    this.events.setMaxListeners(0);
    this.attempts = options.attempts ?? 3;
    this.backoffMs = options.backoffMs ?? 1000;
  }

  get queueSize(): number {
    return this.waiting;
  }

  /** Resolves once the event stream is being read (so no completion is missed). */
  async started(): Promise<void> {
    await this.events.waitUntilReady();
  }

  async run(task: SimulateTask, signal?: AbortSignal): Promise<SimulateTaskResult> {
    // A derived profile travels with its job (workers cannot read it by id); calibration's
    // candidate profiles stay in-process.
    if (task.profile && evidenceOf(task.profile) !== 'derived')
      throw new Error('candidate profiles run in-process only (calibration): not on the queue');
    const threshold = task.starvationThreshold ?? DEFAULT_STARVATION_THRESHOLD;
    const profile = task.profile ?? loadProfile(task.scenario.profile);
    const jobId = simulationKey(profile, task.scenario, threshold);
    this.waiting++;
    try {
      let job: Job<SimulateTask, SimulateTaskResult>;
      try {
        job = await untilAborted(
          this.queue.add(
            'simulate',
            {
              scenario: task.scenario,
              starvationThreshold: threshold,
              ...(task.profile ? { profile: task.profile } : {}),
            },
            {
              jobId,
              attempts: this.attempts,
              backoff: { type: 'exponential', delay: this.backoffMs },
              removeOnComplete: { age: 3600, count: 100_000 },
              removeOnFail: { age: 60 },
            },
          ),
          signal,
        );
      } catch (e) {
        if (signal?.aborted) throw e;
        throw new QueueUnavailableError(
          `the twin queue at Redis is unavailable (${(e as Error).message}); retry shortly`,
        );
      }
      const onAbort = () => {
        // Still queued: nobody else may want it either (another asker re-adds it). Running or
        // done: removal is refused, and the result serves the next asker.
        job.remove().catch(() => undefined);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      try {
        return await untilAborted(job.waitUntilFinished(this.events), signal);
      } catch (e) {
        if (signal?.aborted) throw e;
        throw new TwinJobFailedError(jobId, describeScenario(task), (e as Error).message);
      } finally {
        signal?.removeEventListener('abort', onAbort);
      }
    } finally {
      this.waiting--;
    }
  }

  async notReady(): Promise<string | undefined> {
    try {
      await this.producer.ping();
    } catch (e) {
      return `Redis at the queue URL does not answer: ${(e as Error).message}`;
    }
    const workers = await this.queue.getWorkers();
    return workers.length > 0 ? undefined : 'no twin worker is connected to the queue';
  }

  async stats(): Promise<RunnerStats> {
    const counts = await this.queue.getJobCounts(
      'waiting',
      'prioritized',
      'delayed',
      'active',
      'failed',
    );
    const completed = await this.producer.hgetall(COMPLETED_KEY);
    return {
      waiting: (counts.waiting ?? 0) + (counts.prioritized ?? 0) + (counts.delayed ?? 0),
      active: counts.active ?? 0,
      failed: counts.failed ?? 0,
      workers: Object.entries(completed).map(([name, n]) => ({ name, completed: Number(n) })),
    };
  }

  async close(): Promise<void> {
    await this.events.close();
    await this.queue.close();
    this.producer.disconnect();
    this.eventsConnection.disconnect();
  }
}

export interface QueueWorkerOptions {
  concurrency: number;
  /** Runs the simulations off the event loop (a SimulationPool). */
  pool: Pick<TwinRunner, 'run' | 'close'>;
  name?: string;
  /**
   * How long a job's lock lasts without renewal: a killed worker's job is taken over by another
   * within about this long (plus the stalled-job check interval, half of it).
   */
  lockMs?: number;
}

/**
 * A worker: takes twin jobs from the queue, `concurrency` at a time, and runs each on the worker
 * pool's threads (CPU-bound work stays off the event loop, as a sandboxed processor would keep
 * it). Its lock renews while it lives; killed, its jobs stall and another worker retries them.
 */
export function startQueueWorker(url: string, options: QueueWorkerOptions) {
  const connection = new Redis(url, { maxRetriesPerRequest: null });
  connection.on('error', () => undefined);
  const name = options.name ?? `${hostname()}:${process.pid}`;
  const lockDuration = options.lockMs ?? 30_000;
  const worker = new Worker<SimulateTask, SimulateTaskResult>(
    QUEUE_NAME,
    async (job) => options.pool.run(job.data),
    {
      connection,
      concurrency: options.concurrency,
      name,
      lockDuration,
      stalledInterval: Math.max(1000, lockDuration / 2),
      maxStalledCount: 2,
    },
  );
  worker.on('error', () => undefined);
  worker.on('completed', () => {
    connection.hincrby(COMPLETED_KEY, name, 1).catch(() => undefined);
  });
  return {
    worker,
    name,
    async close() {
      await worker.close();
      await options.pool.close();
      connection.disconnect();
    },
  };
}
