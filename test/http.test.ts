import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../src/http/app.js';
import { OPENAPI_PATH, openApiDocument } from '../src/http/openapi.js';
import { problemSchema } from '../src/http/problems.js';
import { ServiceCore } from '../src/service/core.js';
import { openDatabase } from '../src/storage/db.js';
import { simulationResultSchema } from '../src/twin/index.js';
import { scratchDir } from './scratch.js';

const LLAMA = 'h100-64gb/llama-3.1-8b-instruct';
const scenario = (over: Record<string, unknown> = {}) => ({
  profile: LLAMA,
  config: { maxLoras: 8, maxCpuLoras: 16, maxLoraRank: 16 },
  workload: { rates: [0.2], ranks: [16] },
  durationSeconds: 120,
  ...over,
});

async function makeApp(
  dbPath: string,
  extra: { rateLimitPerMinute?: number; bodyLimitBytes?: number } = {},
) {
  const db = openDatabase(dbPath);
  const core = new ServiceCore({ db, threads: 2 });
  const app = await buildApp({ core, ...extra });
  await app.ready();
  return {
    app,
    core,
    close: async () => {
      await app.close();
      await core.close();
      db.close();
    },
  };
}

describe('HTTP API', () => {
  const dir = scratchDir('loraplan-http-');
  const dbPath = join(dir, 'runs.db');
  let s: Awaited<ReturnType<typeof makeApp>>;
  beforeAll(async () => {
    s = await makeApp(dbPath);
  });
  afterAll(async () => s.close());

  it('simulates a scenario, stores the run and serves it back', async () => {
    const res = await s.app.inject({ method: 'POST', url: '/v1/simulate', payload: scenario() });
    expect(res.statusCode).toBe(200);
    const body = simulationResultSchema.parse(res.json());
    expect(body.feasible).toBe(true);
    const id = res.headers['loraplan-run-id'] as string;
    const run = await s.app.inject({ url: `/v1/runs/${id}` });
    expect(run.statusCode).toBe(200);
    expect(run.json().kind).toBe('simulate');
    expect(run.json().response.throughputTokensPerSecond).toBe(body.throughputTokensPerSecond);
  });

  it('answers invalid bodies with problem+json naming every bad field', async () => {
    const res = await s.app.inject({
      method: 'POST',
      url: '/v1/simulate',
      payload: scenario({
        config: { maxLoras: 8, maxCpuLoras: 4, maxLoraRank: 16 },
        workload: { rates: [-1], ranks: [16], extra: 1 },
      }),
    });
    expect(res.statusCode).toBe(400);
    expect(res.headers['content-type']).toContain('application/problem+json');
    const p = problemSchema.parse(res.json());
    const fields = p.errors!.map((e) => e.field);
    expect(fields).toContain('body.workload.rates[0]');
    expect(fields).toContain('body.config.maxCpuLoras');
    expect(p.detail).toContain('Unrecognized key');
  });

  it.each([
    ['malformed JSON', '{bad', 400],
    ['an empty body', '', 400],
    ['non-finite numbers', '{"profile":"x","config":{"maxLoras":1e999}}', 400],
  ])('rejects %s with a 400 problem', async (_, payload, status) => {
    const res = await s.app.inject({
      method: 'POST',
      url: '/v1/simulate',
      payload,
      headers: { 'content-type': 'application/json' },
    });
    expect(res.statusCode).toBe(status);
    problemSchema.parse(res.json());
  });

  it('answers an unknown profile with 404 listing the known ones', async () => {
    const res = await s.app.inject({
      method: 'POST',
      url: '/v1/simulate',
      payload: scenario({ profile: 'a100/none' }),
    });
    expect(res.statusCode).toBe(404);
    expect(res.json().knownProfiles).toContain(LLAMA);
  });

  it('answers 422 when no configuration on the grid serves the workload', async () => {
    const res = await s.app.inject({
      method: 'POST',
      url: '/v1/recommend',
      payload: {
        profile: LLAMA,
        workload: { rates: [40], ranks: [16] },
        method: 'twin',
        search: { concurrent: [16, 32], parallel: [8, 16] },
      },
    });
    expect(res.statusCode).toBe(422);
    expect(res.json().detail).toMatch(/starves/);
  });

  it('recommends with the twin, explains it, and draws the chart', async () => {
    const res = await s.app.inject({
      method: 'POST',
      url: '/v1/recommend',
      payload: {
        profile: LLAMA,
        workload: { rates: [0.4, 0.1], ranks: [16] },
        method: 'twin',
        search: { concurrent: [8, 16, 32, 64], parallel: [8, 16] },
      },
    });
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body.recommendation.starving).toBe(false);
    expect(body.vllmArgs).toEqual([
      '--enable-lora',
      `--max-loras=${body.recommendation.parallelAdapters}`,
      `--max-cpu-loras=${body.recommendation.concurrentAdapters}`,
      '--max-lora-rank=16',
    ]);
    expect(body.explanation.summary).toMatch(/serve/);
    const chart = await s.app.inject({ url: `/v1/runs/${body.runId}/chart.svg` });
    expect(chart.statusCode).toBe(200);
    expect(chart.headers['content-type']).toContain('image/svg+xml');
    expect(chart.body).toContain('<svg');
  });

  it('checks configurations: starving and infeasible verdicts', async () => {
    const starving = await s.app.inject({
      method: 'POST',
      url: '/v1/check',
      payload: {
        profile: LLAMA,
        workload: { rates: [5], ranks: [16] },
        config: { maxLoras: 8, maxCpuLoras: 64, maxLoraRank: 16 },
      },
    });
    expect(starving.statusCode).toBe(200);
    expect(starving.json().verdict).toBe('starving');
    const infeasible = await s.app.inject({
      method: 'POST',
      url: '/v1/check',
      payload: {
        profile: LLAMA,
        workload: { rates: [0.1], ranks: [32] },
        config: { maxLoras: 256, maxCpuLoras: 256, maxLoraRank: 32 },
      },
    });
    expect(infeasible.json().verdict).toBe('infeasible');
  });

  it('lists runs newest first with filters and a cursor', async () => {
    for (let i = 0; i < 3; i++)
      await s.app.inject({
        method: 'POST',
        url: '/v1/simulate',
        payload: scenario({ seed: 100 + i }),
      });
    const first = await s.app.inject({ url: '/v1/runs?kind=simulate&limit=2' });
    expect(first.statusCode).toBe(200);
    const page = first.json();
    expect(page.runs).toHaveLength(2);
    expect(page.runs.every((r: { kind: string }) => r.kind === 'simulate')).toBe(true);
    expect(page.runs[0].createdAt >= page.runs[1].createdAt).toBe(true);
    const next = await s.app.inject({
      url: `/v1/runs?kind=simulate&limit=2&cursor=${page.nextCursor}`,
    });
    const ids = [...page.runs, ...next.json().runs].map((r: { id: string }) => r.id);
    expect(new Set(ids).size).toBe(ids.length);
    const bad = await s.app.inject({ url: '/v1/runs?cursor=nope' });
    expect(bad.statusCode).toBe(400);
  });

  it('serves catalogs, health, readiness and metrics', async () => {
    const profiles = (await s.app.inject({ url: '/v1/profiles' })).json().profiles as Array<{
      id: string;
      latencyCalibration: { coverage: number; envelope: { ratePerAdapter: number[] } } | null;
    }>;
    const llama = profiles.find((p) => p.id === LLAMA);
    // An operator reads up front where the latency intervals were measured.
    expect(llama?.latencyCalibration?.coverage).toBe(0.9);
    expect(llama?.latencyCalibration?.envelope.ratePerAdapter).toEqual([0.025, 1.6]);
    expect((await s.app.inject({ url: '/v1/models' })).statusCode).toBe(200);
    expect((await s.app.inject({ url: '/healthz' })).json()).toEqual({ status: 'ok' });
    expect((await s.app.inject({ url: '/readyz' })).json().status).toBe('ready');
    const metrics = await s.app.inject({ url: '/metrics' });
    expect(metrics.body).toContain('loraplan_http_requests_total');
    expect(metrics.body).toContain('loraplan_simulation_cache_hits_total');
    expect(metrics.body).toContain('loraplan_twin_queue_depth');
    expect((await s.app.inject({ url: '/nope' })).statusCode).toBe(404);
  });

  it('finds earlier runs after a restart on the same database', async () => {
    const before = (await s.app.inject({ url: '/v1/runs?limit=200' })).json().runs.length;
    const other = await makeApp(dbPath);
    try {
      const after = (await other.app.inject({ url: '/v1/runs?limit=200' })).json().runs.length;
      expect(after).toBe(before);
      expect(before).toBeGreaterThan(0);
    } finally {
      await other.close();
    }
  });
});

describe('HTTP limits', () => {
  it('answers 413 over the body limit and 429 past the rate limit', async () => {
    const dir = scratchDir('loraplan-limits-');
    const s = await makeApp(join(dir, 'db'), { rateLimitPerMinute: 3, bodyLimitBytes: 1000 });
    try {
      const big = await s.app.inject({
        method: 'POST',
        url: '/v1/simulate',
        payload: { ...scenario(), pad: 'x'.repeat(2000) },
      });
      expect(big.statusCode).toBe(413);
      problemSchema.parse(big.json());
      const statuses: number[] = [];
      for (let i = 0; i < 5; i++)
        statuses.push((await s.app.inject({ url: '/v1/profiles' })).statusCode);
      expect(statuses).toContain(429);
      const limited = await s.app.inject({ url: '/v1/profiles' });
      expect(limited.statusCode).toBe(429);
      expect(limited.headers['content-type']).toContain('application/problem+json');
    } finally {
      await s.close();
    }
  });
});

describe('OpenAPI document', () => {
  it('is committed and up to date (run npm run openapi)', async () => {
    expect(readFileSync(OPENAPI_PATH, 'utf8')).toBe(await openApiDocument());
  });

  it('documents every route with a summary, a description and error responses', async () => {
    const doc = JSON.parse(await openApiDocument()) as {
      openapi: string;
      paths: Record<
        string,
        Record<
          string,
          { summary?: string; description?: string; responses: Record<string, unknown> }
        >
      >;
    };
    expect(doc.openapi).toBe('3.1.0');
    for (const [path, ops] of Object.entries(doc.paths)) {
      if (path.startsWith('/docs')) continue;
      for (const op of Object.values(ops)) {
        expect(op.summary, path).toBeTruthy();
        expect(op.description, path).toBeTruthy();
      }
    }
    expect(Object.keys(doc.paths['/v1/recommend']!.post!.responses)).toEqual(
      expect.arrayContaining(['200', '400', '404', '413', '422', '429', '503']),
    );
  });
});

describe('HTTP time limits', () => {
  it('answers 503 with Retry-After when a computation outlives the request time limit', async () => {
    const db = openDatabase(':memory:');
    const core = new ServiceCore({ db, threads: 1, requestTimeoutMs: 5 });
    const app = await buildApp({ core });
    try {
      const res = await app.inject({
        method: 'POST',
        url: '/v1/simulate',
        payload: scenario({ durationSeconds: 3600, seed: 77 }),
      });
      expect(res.statusCode).toBe(503);
      expect(res.headers['retry-after']).toBe('5');
      expect(problemSchema.parse(res.json()).detail).toMatch(/longer than 5 ms/);
    } finally {
      await app.close();
      await core.close();
      db.close();
    }
  });
});
