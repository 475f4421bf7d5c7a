// The queue backend against a real Redis (never a mock): each run starts its own redis-server on a
// free loopback port with a temporary directory, and stops it. Without redis-server installed these
// tests are skipped with one line saying why.
import { spawn } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../src/cli/main.js';
import { buildApp } from '../src/http/app.js';
import { ServiceCore } from '../src/service/core.js';
import { openDatabase } from '../src/storage/db.js';
import { SimulationPool } from '../src/runtime/pool.js';
import { LocalRedis, hasRedisServer } from '../src/runtime/local-redis.js';
import { QUEUE_NAME, QueueRunner, startQueueWorker } from '../src/runtime/queue.js';
import type { SimulateTask } from '../src/runtime/simulate-worker.js';
import { scenarioSchema, type Scenario } from '../src/twin/index.js';
import { scratchDir } from './scratch.js';

const hasRedis = hasRedisServer();
if (!hasRedis)
  console.log(
    'queue tests skipped: redis-server is not installed (apt-get install -y redis-server)',
  );

const LLAMA = 'h100-64gb/llama-3.1-8b-instruct';
const dir = scratchDir('loraplan-redis-');
let redis: LocalRedis;
let url = '';
const stopRedis = () => redis.stop();
const startRedis = () => redis.start();

/** A small scenario; `load` scales its rates so that different tests use different jobs. */
function scenario(load: number, durationSeconds = 300): Scenario {
  return scenarioSchema.parse({
    profile: LLAMA,
    config: { maxLoras: 8, maxCpuLoras: 32, maxLoraRank: 16 },
    workload: { rates: [0.2 * load, 0.05 * load], ranks: [16] },
    durationSeconds,
    seed: 7,
  });
}

const withoutWallTime = ({ wallTimeMs: _w, ...rest }: { wallTimeMs: number }) => rest;

beforeAll(async () => {
  if (!hasRedis) return;
  redis = await LocalRedis.start(dir);
  url = redis.url;
}, 30_000);
afterAll(async () => {
  if (hasRedis) await stopRedis();
  rmSync(dir, { recursive: true, force: true });
});

describe.skipIf(!hasRedis)('the queue backend on a real Redis', () => {
  it('returns what the in-process pool returns, bit for bit', async () => {
    const pool = new SimulationPool({ threads: 1 });
    const worker = startQueueWorker(url, {
      concurrency: 1,
      pool: new SimulationPool({ threads: 1 }),
    });
    const runner = new QueueRunner(url);
    try {
      await runner.started();
      const task: SimulateTask = { scenario: scenario(1), starvationThreshold: 0.1 };
      const [queued, local] = await Promise.all([runner.run(task), pool.run(task)]);
      expect(withoutWallTime(queued)).toEqual(withoutWallTime(local));
      expect(await runner.notReady()).toBeUndefined();
    } finally {
      await runner.close();
      await worker.close();
      await pool.close();
    }
  }, 60_000);

  it('runs identical work from two service instances once', async () => {
    const worker = startQueueWorker(url, {
      concurrency: 2,
      pool: new SimulationPool({ threads: 2 }),
    });
    let completed = 0;
    worker.worker.on('completed', () => completed++);
    // Two API instances, each with its own SQLite cache, on one Redis.
    const instances = await Promise.all(
      [0, 1].map(async () => {
        const core = new ServiceCore({
          db: openDatabase(':memory:'),
          runner: new QueueRunner(url),
        });
        const app = await buildApp({ core });
        await app.ready();
        return { core, app };
      }),
    );
    const simulate = (app: (typeof instances)[number]['app']) =>
      app.inject({
        method: 'POST',
        url: '/v1/simulate',
        payload: JSON.stringify(scenario(2)),
        headers: { 'content-type': 'application/json' },
      });
    try {
      const [a, b] = (await Promise.all(instances.map((i) => simulate(i.app)))) as [
        Awaited<ReturnType<typeof simulate>>,
        Awaited<ReturnType<typeof simulate>>,
      ];
      expect(a.statusCode).toBe(200);
      expect(b.statusCode).toBe(200);
      expect(withoutWallTime(a.json())).toEqual(withoutWallTime(b.json()));
      // The worker's own 'completed' event can come after the answers: wait for it, then a little
      // longer for a second one that must not come.
      for (let i = 0; i < 100 && completed === 0; i++) await new Promise((r) => setTimeout(r, 20));
      await new Promise((r) => setTimeout(r, 200));
      expect(completed).toBe(1);
      expect(instances.map((i) => i.core.cache.stats.misses)).toEqual([1, 1]);
    } finally {
      for (const i of instances) {
        await i.app.close();
        await i.core.close();
      }
      await worker.close();
    }
  }, 60_000);

  it("finishes a SIGKILLed worker's job on another worker", async () => {
    const runner = new QueueRunner(url, { backoffMs: 100 });
    const queue = new Queue(QUEUE_NAME, {
      connection: new Redis(url, { maxRetriesPerRequest: null }),
    });
    const doomed = spawn(
      process.execPath,
      ['bin/loraplan.js', 'worker', '--redis', url, '--concurrency', '1', '--name', 'doomed'],
      { env: { ...process.env, LORAPLAN_QUEUE_LOCK_MS: '2000' }, stdio: 'ignore' },
    );
    let rescuer: ReturnType<typeof startQueueWorker> | undefined;
    try {
      await runner.started();
      // About two seconds of twin work: long enough to be killed in the middle of.
      const task: SimulateTask = { scenario: scenario(40, 3600), starvationThreshold: 0.1 };
      const result = runner.run(task);
      for (let i = 0; i < 200 && (await queue.getActiveCount()) === 0; i++)
        await new Promise((r) => setTimeout(r, 50));
      expect(await queue.getActiveCount()).toBe(1);
      doomed.kill('SIGKILL');
      rescuer = startQueueWorker(url, {
        concurrency: 1,
        pool: new SimulationPool({ threads: 1 }),
        name: 'rescuer',
        lockMs: 2000,
      });
      const pool = new SimulationPool({ threads: 1 });
      const [rescued, local] = await Promise.all([result, pool.run(task)]);
      await pool.close();
      expect(withoutWallTime(rescued)).toEqual(withoutWallTime(local));
    } finally {
      doomed.kill('SIGKILL');
      await rescuer?.close();
      await runner.close();
      await queue.close();
    }
  }, 90_000);

  it('drops a queued job when its only asker gives up (time limit or client gone)', async () => {
    const runner = new QueueRunner(url);
    const queue = new Queue(QUEUE_NAME, {
      connection: new Redis(url, { maxRetriesPerRequest: null }),
    });
    try {
      await runner.started();
      // No worker: the job can only wait, until the request's limit fires.
      await expect(
        runner.run({ scenario: scenario(8), starvationThreshold: 0.1 }, AbortSignal.timeout(300)),
      ).rejects.toThrow();
      let waiting = -1;
      for (let i = 0; i < 40 && waiting !== 0; i++) {
        waiting = await queue.getWaitingCount();
        if (waiting !== 0) await new Promise((r) => setTimeout(r, 25));
      }
      expect(waiting).toBe(0);
    } finally {
      await runner.close();
      await queue.close();
    }
  }, 30_000);

  it('fails cleanly or completes when Redis restarts mid-run, never hangs', async () => {
    const runner = new QueueRunner(url);
    try {
      await runner.started();
      // No worker yet: the job waits in Redis, which then restarts empty.
      const pending = runner
        .run({ scenario: scenario(3), starvationThreshold: 0.1 }, AbortSignal.timeout(6000))
        .then(
          () => 'completed',
          (e: unknown) => (e instanceof Error ? 'failed' : 'threw a non-error'),
        );
      await new Promise((r) => setTimeout(r, 300));
      await stopRedis();
      // While Redis is away a new request is refused at once, not parked.
      const started = Date.now();
      await expect(runner.run({ scenario: scenario(4), starvationThreshold: 0.1 })).rejects.toThrow(
        /unavailable/,
      );
      expect(Date.now() - started).toBeLessThan(5000);
      await startRedis();
      const settled = await Promise.race([
        pending,
        new Promise((r) => setTimeout(() => r('hung'), 10_000)),
      ]);
      expect(['completed', 'failed']).toContain(settled);
      // And the backend recovers: new work completes once a worker is there.
      const worker = startQueueWorker(url, {
        concurrency: 1,
        pool: new SimulationPool({ threads: 1 }),
      });
      try {
        let result: unknown;
        for (let i = 0; i < 20 && result === undefined; i++) {
          result = await runner
            .run({ scenario: scenario(5), starvationThreshold: 0.1 }, AbortSignal.timeout(5000))
            .catch(() => undefined);
        }
        expect(result).toMatchObject({ feasible: true });
      } finally {
        await worker.close();
      }
    } finally {
      await runner.close();
    }
  }, 90_000);

  it('is ready with Redis and a worker, and answers a failed job with a problem naming the scenario', async () => {
    const core = new ServiceCore({
      db: openDatabase(':memory:'),
      runner: new QueueRunner(url, { attempts: 2, backoffMs: 50 }),
    });
    const app = await buildApp({ core });
    await app.ready();
    const broken = startQueueWorker(url, {
      concurrency: 1,
      pool: { run: () => Promise.reject(new Error('out of memory')), close: async () => {} },
      name: 'broken',
    });
    try {
      await broken.worker.waitUntilReady();
      expect((await app.inject({ url: '/readyz' })).statusCode).toBe(200);
      const res = await app.inject({
        method: 'POST',
        url: '/v1/simulate',
        payload: JSON.stringify(scenario(6)),
        headers: { 'content-type': 'application/json' },
      });
      expect(res.statusCode).toBe(502);
      expect(res.headers['content-type']).toContain('application/problem+json');
      const problem = res.json<{ type: string; detail: string }>();
      expect(problem.type).toContain('twin-job-failed');
      expect(problem.detail).toContain('max_loras=8, max_cpu_loras=32');
      expect(problem.detail).toContain('out of memory');
      const metrics = (await app.inject({ url: '/metrics' })).body;
      expect(metrics).toMatch(/loraplan_twin_jobs_failed [1-9]/);
      await broken.close();
      // Redis drops the closed worker's connection from its client list within moments.
      let notReady = await app.inject({ url: '/readyz' });
      for (let i = 0; i < 100 && notReady.statusCode === 200; i++) {
        await new Promise((r) => setTimeout(r, 20));
        notReady = await app.inject({ url: '/readyz' });
      }
      expect(notReady.statusCode).toBe(503);
      expect(notReady.json<{ detail: string }>().detail).toContain('no twin worker');
    } finally {
      await broken.close().catch(() => undefined);
      await app.close();
      await core.close();
    }
  }, 60_000);

  it('builds a training set through the queue with the rows of a local build', async () => {
    const worker = startQueueWorker(url, {
      concurrency: 2,
      pool: new SimulationPool({ threads: 2 }),
    });
    const local = join(dir, 'local.jsonl');
    const queued = join(dir, 'queued.jsonl');
    const quiet = { stdout: process.stdout.write, stderr: process.stderr.write };
    try {
      process.stderr.write = () => true;
      // Seed 5 draws two heavy workloads (optima 16 x 16 and 24 x 16): short searches, real rows.
      const args = ['dataset', '--profile', LLAMA, '--workloads', '2', '--seed', '5'];
      expect(await main([...args, '--out', local])).toBe(0);
      process.env.LORAPLAN_REDIS_URL = url;
      expect(await main([...args, '--out', queued])).toBe(0);
    } finally {
      delete process.env.LORAPLAN_REDIS_URL;
      process.stderr.write = quiet.stderr;
      await worker.close();
    }
    const rows = (f: string) =>
      readFileSync(f, 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { index: number; wallMs?: number })
        .map(({ wallMs: _w, ...row }) => row)
        .sort((a, b) => a.index - b.index);
    expect(rows(queued)).toEqual(rows(local));
    expect(rows(queued)).toHaveLength(2);
  }, 300_000);
});
