// Twin work under pressure: a full queue answers 503 with Retry-After (never 500), and work whose
// request gave up (time limit or client gone) is stopped rather than left to hold up the next one.
import { describe, expect, it } from 'vitest';
import { buildApp } from '../src/http/app.js';
import { PoolSaturatedError, SimulationPool } from '../src/runtime/pool.js';
import { ServiceCore } from '../src/service/core.js';
import { openDatabase } from '../src/storage/db.js';
import { scenarioSchema } from '../src/twin/index.js';

const LLAMA = 'h100-64gb/llama-3.1-8b-instruct';
/**
 * A simulation that takes about half a second: 64 adapters overloading 32 slots for an hour (a
 * queue that grows all hour, so one arrival realisation answers it).
 */
const heavy = (seed: number) => ({
  profile: LLAMA,
  config: { maxLoras: 32, maxCpuLoras: 64, maxLoraRank: 16 },
  workload: { rates: [0.8], ranks: [16] },
  durationSeconds: 3600,
  seed,
});

/** The same pair at a quarter of the load: it keeps up behind a queue that comes and goes. */
const knifeEdge = (seed: number) => ({ ...heavy(seed), workload: { rates: [0.2], ranks: [16] } });

describe('a saturated worker pool', () => {
  it('refuses past maxQueue with its own error type', async () => {
    const pool = new SimulationPool({ threads: 1, maxQueue: 1 });
    try {
      const running = pool.run({ scenario: scenarioSchema.parse(heavy(1)) });
      const queued = pool.run({ scenario: scenarioSchema.parse(heavy(2)) });
      await expect(pool.run({ scenario: scenarioSchema.parse(heavy(3)) })).rejects.toBeInstanceOf(
        PoolSaturatedError,
      );
      await Promise.all([running, queued]);
    } finally {
      await pool.close();
    }
  }, 60_000);

  it('answers 503 with Retry-After, never 500, to a burst of distinct requests', async () => {
    const core = new ServiceCore({ db: openDatabase(':memory:'), threads: 1, maxQueue: 2 });
    const app = await buildApp({ core });
    try {
      const responses = await Promise.all(
        Array.from({ length: 12 }, (_, i) =>
          app.inject({ method: 'POST', url: '/v1/simulate', payload: heavy(10 + i) }),
        ),
      );
      const statuses = responses.map((r) => r.statusCode);
      expect(statuses.filter((s) => s >= 500 && s !== 503)).toEqual([]);
      const refused = responses.filter((r) => r.statusCode === 503);
      expect(refused.length).toBeGreaterThan(0);
      for (const r of refused) {
        expect(r.headers['retry-after']).toBe('5');
        expect(r.json().detail).toMatch(/saturated/);
      }
      expect(statuses.filter((s) => s === 200).length).toBeGreaterThanOrEqual(3);
    } finally {
      await app.close();
      await core.close();
    }
  }, 120_000);

  it('answers 503, never 500, when a pair read over five realisations finds the queue full', async () => {
    // Room for one request's five realisations, not for twelve requests'.
    const core = new ServiceCore({ db: openDatabase(':memory:'), threads: 1, maxQueue: 4 });
    const app = await buildApp({ core });
    try {
      const responses = await Promise.all(
        Array.from({ length: 12 }, (_, i) =>
          app.inject({ method: 'POST', url: '/v1/simulate', payload: knifeEdge(10 + i) }),
        ),
      );
      const statuses = responses.map((r) => r.statusCode);
      expect(statuses.filter((s) => s >= 500 && s !== 503)).toEqual([]);
      const refused = responses.filter((r) => r.statusCode === 503);
      expect(refused.length).toBeGreaterThan(0);
      for (const r of refused) expect(r.json().detail).toMatch(/saturated/);
      // The first request's other seeds are the next four requests' own, already admitted.
      expect(responses[0]!.statusCode).toBe(200);
      for (const r of responses.filter((x) => x.statusCode === 200))
        expect(r.json().latency.ttftArrivalRealisations).toBe(5);
    } finally {
      await app.close();
      await core.close();
    }
  }, 120_000);
});

describe('twin work whose request gave up', () => {
  it('is aborted at the time limit, not left running into the cache', async () => {
    const core = new ServiceCore({
      db: openDatabase(':memory:'),
      threads: 1,
      requestTimeoutMs: 150,
    });
    const app = await buildApp({ core });
    try {
      const res = await app.inject({ method: 'POST', url: '/v1/simulate', payload: heavy(50) });
      expect(res.statusCode).toBe(503);
      expect(core.cache.stats.cancelled).toBe(1);
      expect(core.cache.inFlightCount).toBe(0);
      // Not cached: asking again is a miss, and is aborted again.
      const again = await app.inject({ method: 'POST', url: '/v1/simulate', payload: heavy(50) });
      expect(again.statusCode).toBe(503);
      expect(core.cache.stats.misses).toBe(2);
    } finally {
      await app.close();
      await core.close();
    }
  }, 60_000);

  it('is aborted when the client disconnects, unless another request still waits on it', async () => {
    const core = new ServiceCore({ db: openDatabase(':memory:'), threads: 1 });
    const app = await buildApp({ core });
    await app.listen({ port: 0, host: '127.0.0.1' });
    const { port } = app.server.address() as { port: number };
    const send = (seed: number, signal: AbortSignal) =>
      fetch(`http://127.0.0.1:${port}/v1/simulate`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(heavy(seed)),
        signal,
      }).then(
        async (res) => ({ status: res.status, body: await res.text() }),
        () => null,
      );
    const soon = () => new Promise((r) => setTimeout(r, 200));
    try {
      // Two clients wait on one computation; the first leaves, the second still gets its answer.
      const gone = new AbortController();
      const first = send(60, gone.signal);
      const second = send(60, new AbortController().signal);
      await soon();
      gone.abort();
      expect(await first).toBeNull();
      expect((await second)?.status).toBe(200);
      expect(core.cache.stats.cancelled).toBe(0);

      // A client alone on its computation leaves: the computation is stopped.
      const alone = new AbortController();
      const third = send(61, alone.signal);
      await soon();
      alone.abort();
      expect(await third).toBeNull();
      for (let i = 0; i < 50 && core.cache.stats.cancelled === 0; i++) await soon();
      expect(core.cache.stats.cancelled).toBe(1);
      expect(core.cache.inFlightCount).toBe(0);
    } finally {
      app.server.closeAllConnections();
      await app.close();
      await core.close();
    }
  }, 60_000);
});

describe('warming the pool', () => {
  it('leaves every simulation as a cold thread would run it, and nothing queued', async () => {
    const task = { scenario: scenarioSchema.parse(knifeEdge(4)) };
    const cold = new SimulationPool({ threads: 1 });
    const warm = new SimulationPool({ threads: 2 });
    try {
      const coldResult = await cold.run(task);
      await warm.warmUp();
      expect(warm.queueSize).toBe(0);
      const [a, b] = await Promise.all([warm.run(task), warm.run(task)]);
      for (const r of [a, b])
        expect({ ...r, wallTimeMs: 0 }).toEqual({ ...coldResult, wallTimeMs: 0 });
    } finally {
      await Promise.all([cold.close(), warm.close()]);
    }
  }, 60_000);
});
