import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Piscina } from 'piscina';
import type { SimulateTask, SimulateTaskResult } from './simulate-worker.js';

export interface PoolOptions {
  threads?: number;
  maxQueue?: number;
}

/** A worker-thread pool for twin simulations; works from compiled JS and from TS under tsx/vitest. */
export class SimulationPool {
  private readonly pool: Piscina<SimulateTask, SimulateTaskResult>;

  constructor(options: PoolOptions = {}) {
    const fromSource = import.meta.url.endsWith('.ts');
    const filename = fileURLToPath(
      new URL(fromSource ? './simulate-worker.ts' : './simulate-worker.js', import.meta.url),
    );
    const threads = options.threads ?? Math.max(1, availableParallelism());
    this.pool = new Piscina({
      filename,
      minThreads: threads,
      maxThreads: threads,
      ...(options.maxQueue !== undefined ? { maxQueue: options.maxQueue } : {}),
      execArgv: fromSource ? [...process.execArgv, '--import', 'tsx'] : process.execArgv,
    });
  }

  get threads(): number {
    return this.pool.threads.length;
  }

  get queueSize(): number {
    return this.pool.queueSize;
  }

  run(task: SimulateTask, signal?: AbortSignal): Promise<SimulateTaskResult> {
    return this.pool.run(task, signal ? { signal } : {});
  }

  async close(): Promise<void> {
    await this.pool.destroy();
  }
}
