import { describe, expect, it } from 'vitest';
import { withService, type App } from './service.js';

const QWEN = 'h100-64gb/qwen-2.5-7b-instruct';
let app: App;
withService((a) => (app = a));

const post = (payload: unknown) =>
  app.inject({
    method: 'POST',
    url: '/v1/placement',
    payload: JSON.stringify(payload),
    headers: { 'content-type': 'application/json' },
  });

describe('POST /v1/placement', () => {
  it('stores the placement as a run with a chart of each GPU', async () => {
    const res = await post({
      profile: QWEN,
      catalog: [
        { id: 'a', rate: 2, rank: 8 },
        { id: 'b', rate: 0.5, rank: 16 },
        { id: 'c', rate: 0.05, rank: 8 },
      ],
    });
    expect(res.statusCode).toBe(200);
    const body = res.json<{ runId: string; gpus: Array<{ adapters: unknown[] }> }>();
    expect(body.gpus.flatMap((g) => g.adapters)).toHaveLength(3);
    const run = await app.inject({ method: 'GET', url: `/v1/runs/${body.runId}` });
    expect(run.json<{ kind: string; verdict: string }>()).toMatchObject({
      kind: 'placement',
      verdict: 'ok',
    });
    const chart = await app.inject({ method: 'GET', url: `/v1/runs/${body.runId}/chart.svg` });
    expect(chart.statusCode).toBe(200);
    expect(chart.headers['content-type']).toContain('image/svg+xml');
    expect(chart.body).toContain('offered load');
    const list = await app.inject({ method: 'GET', url: '/v1/runs?kind=placement' });
    expect(list.json<{ runs: unknown[] }>().runs).toHaveLength(1);
  }, 120_000);

  it('answers 400 naming duplicate ids and ranks the profile cannot serve', async () => {
    const dup = await post({
      profile: QWEN,
      catalog: [
        { id: 'x', rate: 1, rank: 8 },
        { id: 'x', rate: 1, rank: 8 },
      ],
    });
    expect(dup.statusCode).toBe(400);
    expect(dup.headers['content-type']).toContain('application/problem+json');
    expect(JSON.stringify(dup.json())).toContain('duplicate adapter id \\"x\\"');
    const rank = await post({ profile: QWEN, catalog: [{ id: 'big', rate: 1, rank: 1000 }] });
    expect(rank.statusCode).toBe(400);
    expect(JSON.stringify(rank.json())).toContain('body.catalog[0].rank');
  });
});
