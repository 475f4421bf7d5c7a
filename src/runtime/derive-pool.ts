import type { Piscina } from 'piscina';
import { DeriveError, type DeriveRequest } from '../derive/index.js';
import type { Profile } from '../twin/profile.js';
import type { DeriveTask, DeriveTaskResult } from './derive-worker.js';
import { PoolSaturatedError, workerPool } from './pool.js';

/**
 * Profile derivations on a thread of their own, so a derivation's allocator replays (up to about a
 * second) never hold up the requests being answered. The thread starts at the first derivation;
 * beyond `maxQueue` waiting derivations the next is refused (HTTP 503).
 */
export class DerivePool {
  private pool: Piscina<DeriveTask, DeriveTaskResult> | undefined;

  constructor(private readonly maxQueue = 16) {}

  async derive(request: DeriveRequest, measured: Profile[]): Promise<Profile> {
    this.pool ??= workerPool<DeriveTask, DeriveTaskResult>('derive-worker', 1);
    if (this.pool.queueSize >= this.maxQueue)
      throw new PoolSaturatedError(this.pool.queueSize, 'derivations', 'the derivation thread');
    const result = await this.pool.run({ request, measured });
    if ('issues' in result) throw new DeriveError(result.issues);
    return result.profile;
  }

  async close(): Promise<void> {
    const pool = this.pool;
    this.pool = undefined;
    await pool?.destroy();
  }
}
