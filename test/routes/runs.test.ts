import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/http/app.js';
import type { RecommendResponse } from '../../src/recommend/index.js';
import { recommendationHeatmap } from '../../src/service/chart.js';
import { ServiceCore } from '../../src/service/core.js';
import { openDatabase } from '../../src/storage/db.js';

const point = (
  c: number,
  p: number,
  over: Partial<RecommendResponse['evaluated'][number]> = {},
) => ({
  concurrentAdapters: c,
  parallelAdapters: p,
  feasible: true,
  simulated: true,
  throughputTokensPerSecond: c * 10,
  offeredTokensPerSecond: c * 10,
  starving: false,
  sloViolated: false,
  stable: true,
  ttftP99Ms: 100,
  itlP99Ms: 50,
  ...over,
});

describe('the recommendation heatmap', () => {
  const response: RecommendResponse = {
    recommendation: {
      concurrentAdapters: 64,
      parallelAdapters: 16,
      maxLoraRank: 16,
      throughputTokensPerSecond: 640,
      offeredTokensPerSecond: 640,
      starving: false,
      headroom: { percent: 20, atLeast: false, method: 'twin-bisection', resolutionPercent: 5 },
      warnings: [],
    },
    vllmArgs: [],
    method: 'twin',
    objective: 'paper',
    explanation: { summary: '' },
    evaluated: [
      point(32, 16),
      point(64, 16),
      point(128, 16, { starving: true, throughputTokensPerSecond: 700 }),
      point(64, 128, { feasible: false, simulated: false }),
      point(32, 8, { sloViolated: true }),
    ],
  };
  const svg = recommendationHeatmap(response);

  it('puts slot counts in numeric order (128 above 16 above 8), not string order', () => {
    const labels = [...svg.matchAll(/text-anchor="end">(\d+)<\/text>/g)].map((m) => Number(m[1]));
    expect(labels).toEqual([128, 16, 8]);
  });

  it('marks starving, SLO-breaking and infeasible cells, blanks the unsimulated, outlines the answer', () => {
    expect(svg).toContain('0.7 ✕'); // 128 x 16 starves
    expect(svg).toContain('0.3 !'); // 32 x 8 breaks the SLO
    expect(svg).toContain('>n/a<'); // 64 x 128 cannot start
    expect(svg).toContain('128 adapters, 8 slots: not evaluated');
    expect(svg.match(/stroke-width="3"/g)).toHaveLength(1);
    expect(svg).toContain('answer: 64 x 16');
  });

  it("draws each pair's p99 TTFT upper bound against the SLO beside throughput", () => {
    const estimate = (ms: number, high: number) => ({
      ms,
      lowMs: ms / 2,
      highMs: high * 1.2,
      sloMs: high,
    });
    const latency = (highTtft: number) => ({
      ttftMs: { p50: estimate(100, 200), p99: estimate(highTtft / 2, highTtft) },
      itlMs: { p50: estimate(20, 30), p99: estimate(60, 90) },
      coverage: 0.9,
      calibrated: true,
      ttftArrivalRealisations: 1,
    });
    const withLatency = recommendationHeatmap(
      {
        ...response,
        evaluated: [
          point(32, 16, { latency: latency(1500) }),
          point(64, 16, { latency: latency(4000) }),
          point(128, 16, { latency: latency(9000), sloViolated: true }),
        ],
      },
      { ttftP99Ms: 5000 },
    );
    expect(withLatency).toContain('against the SLO&#39;s 5.00 s');
    expect(withLatency).toContain('>1.50<'); // meets: the bound is under 5 s
    expect(withLatency).toContain('>9.00 !<'); // the bound breaks it
    expect(withLatency.match(/stroke-width="3"/g)).toHaveLength(2); // the answer in both panels
  });
});

describe('runs over HTTP', () => {
  let app: Awaited<ReturnType<typeof buildApp>>;
  let core: ServiceCore;
  beforeAll(async () => {
    core = new ServiceCore({ db: openDatabase(':memory:'), threads: 2 });
    app = await buildApp({ core });
  });
  afterAll(async () => {
    await app.close();
    await core.close();
  });

  it("lists summaries with key numbers and serves a recommendation's heatmap", async () => {
    const rec = await app.inject({
      method: 'POST',
      url: '/v1/recommend',
      payload: {
        profile: 'h100-64gb/llama-3.1-8b-instruct',
        workload: { rates: [0.4, 0.1], ranks: [16] },
        method: 'twin',
        search: { concurrent: [8, 16, 32, 64], parallel: [8, 16] },
      },
    });
    expect(rec.statusCode).toBe(200);
    const list = await app.inject({ url: '/v1/runs?kind=recommend' });
    const [summary] = list.json().runs;
    expect(summary).toMatchObject({
      id: rec.json().runId,
      verdict: 'ok',
      summary: {
        concurrentAdapters: rec.json().recommendation.concurrentAdapters,
        parallelAdapters: rec.json().recommendation.parallelAdapters,
      },
    });
    expect(summary).not.toHaveProperty('request');
    const chart = await app.inject({ url: `/v1/runs/${rec.json().runId}/chart.svg` });
    expect(chart.statusCode).toBe(200);
    expect(chart.headers['content-type']).toContain('image/svg+xml');
    expect(chart.body).toContain(`answer: ${rec.json().recommendation.concurrentAdapters} x`);
  }, 60_000);

  it('answers 400 naming a query parameter given twice, not "expected number, received NaN"', async () => {
    const res = await app.inject({ url: '/v1/runs?limit=1&limit=2' });
    expect(res.statusCode).toBe(400);
    expect(res.headers['content-type']).toContain('application/problem+json');
    expect(res.json()).toMatchObject({
      errors: [{ field: 'querystring.limit', message: 'given 2 times; give it once' }],
    });
  });
});
