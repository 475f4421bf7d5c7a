import { describe, expect, it } from 'vitest';
import { withService, type App } from './service.js';
import type { ServiceCore } from '../../src/service/core.js';

const LLAMA = 'h100-64gb/llama-3.1-8b-instruct';
let app: App;
let core: ServiceCore;
withService((a, c) => ([app, core] = [a, c]));

const post = (url: string, payload: unknown, headers: Record<string, string> = {}) =>
  app.inject({
    method: 'POST',
    url,
    payload: typeof payload === 'string' ? payload : JSON.stringify(payload),
    headers: { 'content-type': 'application/json', ...headers },
  });
const problemOf = (res: {
  statusCode: number;
  headers: Record<string, unknown>;
  json: () => unknown;
}) => {
  expect(res.headers['content-type']).toContain('application/problem+json');
  return res.json() as {
    status: number;
    detail: string;
    errors?: Array<{ field: string; message: string }>;
  };
};

describe("the design's paths are stable aliases", () => {
  it('answers POST /recommend, /simulate and /check as their /v1/ routes do', async () => {
    const body = { profile: LLAMA, workload: { rates: [0.1, 0.05], ranks: [16] }, method: 'model' };
    const [v1, alias] = await Promise.all([post('/v1/recommend', body), post('/recommend', body)]);
    expect(alias.statusCode).toBe(200);
    const strip = ({ runId: _r, durationMs: _d, ...rest }: Record<string, unknown>) => rest;
    expect(strip(alias.json())).toEqual(strip(v1.json()));
    const scenario = {
      profile: LLAMA,
      config: { maxLoras: 8, maxCpuLoras: 8, maxLoraRank: 16 },
      workload: { rates: [0.1], ranks: [16] },
      durationSeconds: 60,
    };
    const sim = await post('/simulate', scenario);
    expect(sim.statusCode).toBe(200);
    expect(sim.json().feasible).toBe(true);
    const check = await post('/check', {
      profile: LLAMA,
      workload: scenario.workload,
      config: { maxLoras: 8, maxCpuLoras: 8, maxLoraRank: 16 },
    });
    expect(check.statusCode).toBe(200);
    expect(check.json().verdict).toMatch(/ok|suboptimal/);
  }, 60_000);
});

describe('every error a client can cause is problem+json with the right status', () => {
  const body = { profile: LLAMA, workload: { rates: [0.1], ranks: [16] }, method: 'model' };

  it('415 for bodies that are not JSON, and for encodings the service does not decode', async () => {
    const text = await post('/v1/recommend', 'rates=0.1', { 'content-type': 'text/plain' });
    expect(text.statusCode).toBe(415);
    expect(problemOf(text).detail).toMatch(/application\/json/);
    const gzip = await post('/v1/recommend', body, { 'content-encoding': 'gzip' });
    expect(gzip.statusCode).toBe(415);
    expect(problemOf(gzip).detail).toMatch(/Content-Encoding "gzip"/);
  });

  it('names prototype keys as fields instead of calling the JSON invalid', async () => {
    const res = await post(
      '/v1/recommend',
      '{"profile":"h100-64gb/llama-3.1-8b-instruct","workload":{"rates":[0.1],"ranks":[16],"__proto__":{"x":1}},"constructor":{}}',
    );
    expect(res.statusCode).toBe(400);
    expect(
      problemOf(res)
        .errors?.map((e) => e.field)
        .sort(),
    ).toEqual(['body.constructor', 'body.workload.__proto__']);
  });

  it('414 for an over-long path parameter and 400 for a bad percent-escape', async () => {
    const long = await app.inject({ url: `/v1/runs/${'a'.repeat(300)}` });
    expect(long.statusCode).toBe(414);
    expect(problemOf(long).status).toBe(414);
    const bad = await app.inject({ url: '/v1/runs/%E0%A4%A' });
    expect(bad.statusCode).toBe(400);
    expect(problemOf(bad).detail).toMatch(/URL/);
  });

  it('names slot candidates above every adapter candidate as fields', async () => {
    const res = await post('/v1/recommend', {
      ...body,
      method: 'twin',
      search: { concurrent: [8, 16], parallel: [8, 64] },
    });
    expect(res.statusCode).toBe(400);
    expect(problemOf(res).errors?.[0]?.field).toBe('body.search.parallel[1]');
  });

  it('counts only the adapters actually simulated against the arrival limit (the padding trick)', async () => {
    const padded = [1000, ...Array.from({ length: 1023 }, () => 0)];
    const sim = await post('/v1/simulate', {
      profile: LLAMA,
      config: { maxLoras: 1, maxCpuLoras: 1, maxLoraRank: 16 },
      workload: { rates: padded, ranks: [16], adapterCount: 1 },
      durationSeconds: 40_000,
    });
    expect(sim.statusCode).toBe(400);
    expect(problemOf(sim).errors?.[0]?.field).toBe('body.workload.rates');
    const runsBefore = core.twinRuns;
    const rec = await post('/v1/recommend', {
      ...body,
      workload: { rates: padded, ranks: [16] },
      method: 'twin',
    });
    expect(rec.statusCode).toBe(422); // even one adapter at 1000 req/s overloads the GPU
    expect(core.twinRuns).toBe(runsBefore); // decided in closed form: nothing simulated
  });

  it("refuses requests longer than the model's context, naming the field", async () => {
    const res = await post('/v1/recommend', {
      ...body,
      workload: {
        rates: [0.1],
        ranks: [16],
        requestLengths: { kind: 'fixed', input: 1_000_000, output: 1_000_000 },
      },
    });
    expect(res.statusCode).toBe(400);
    expect(problemOf(res).errors?.[0]?.field).toBe('body.workload.requestLengths');
  });
});

describe('/v1/check', () => {
  it('gives a verdict for a configuration it can simulate even when no grid pair compares', async () => {
    const res = await post('/v1/check', {
      profile: LLAMA,
      workload: { rates: [5], ranks: [16] },
      config: { maxLoras: 5, maxCpuLoras: 5, maxLoraRank: 16 },
    });
    expect(res.statusCode).toBe(200);
    expect(['ok', 'suboptimal', 'starving']).toContain(res.json().verdict);
  }, 120_000);
});

describe('latency outside what its intervals were measured on', () => {
  type Latency = { envelope?: string; outsideEnvelope?: Array<{ feature: string }> };

  it('a recommendation under an SLO says so, for its pair and every evaluated one', async () => {
    // The example: 0.0125 req/s is below the measured 0.025-1.6 req/s per adapter.
    const res = await post('/v1/recommend', {
      profile: LLAMA,
      workload: { rates: [0.4, 0.05, 0.0125], ranks: [8, 16, 16] },
      method: 'twin',
      search: { concurrent: [32, 64], parallel: [16, 32] },
      slo: { ttftP99Ms: 30_000 },
    });
    expect(res.statusCode).toBe(200);
    const body = res.json() as {
      recommendation: { latency: Latency; warnings: string[] };
      evaluated: Array<{ simulated: boolean; latency?: Latency }>;
    };
    expect(body.recommendation.latency.envelope).toBe('outside');
    expect(body.recommendation.latency.outsideEnvelope?.map((o) => o.feature)).toEqual([
      'ratePerAdapter',
    ]);
    expect(body.recommendation.warnings.join(' ')).toContain(
      'ratePerAdapter 0.0125, measured 0.025-1.6',
    );
    expect(body.recommendation.warnings.join(' ')).toContain('the SLO check relies on that bound');
    for (const e of body.evaluated.filter((e) => e.simulated))
      expect(e.latency?.envelope).toBe('outside');
  }, 120_000);

  it('a measured workload at a measured pair is inside, and the check says nothing of it', async () => {
    const res = await post('/v1/check', {
      profile: LLAMA,
      workload: { rates: [0.1, 0.05, 0.025], ranks: [8, 16] },
      config: { maxLoras: 16, maxCpuLoras: 32, maxLoraRank: 16 },
      slo: { ttftP99Ms: 5000 },
    });
    expect(res.statusCode).toBe(200);
    const body = res.json() as { reason: string; result: { latency: Latency } };
    expect(body.result.latency.envelope).toBe('inside');
    expect(body.reason).not.toContain('coverage was not measured');

    const fixed = await post('/v1/check', {
      profile: LLAMA,
      workload: {
        rates: [0.1, 0.05, 0.025],
        ranks: [8, 16],
        requestLengths: { kind: 'fixed', input: 1000, output: 100 },
      },
      config: { maxLoras: 16, maxCpuLoras: 32, maxLoraRank: 16 },
      slo: { ttftP99Ms: 5000 },
    });
    const outside = fixed.json() as { reason: string; result: { latency: Latency } };
    expect(outside.result.latency.outsideEnvelope?.map((o) => o.feature)).toEqual([
      'requestLengths',
    ]);
    expect(outside.reason).toContain('coverage was not measured for this case (requestLengths');
  }, 120_000);
});

describe('the OpenAPI document', () => {
  it('declares problems as application/problem+json and lists the statuses each route returns', async () => {
    const doc = (await app.inject({ url: '/docs/json' })).json() as {
      paths: Record<
        string,
        Record<string, { responses: Record<string, { content?: Record<string, unknown> }> }>
      >;
    };
    for (const [path, ops] of Object.entries(doc.paths))
      for (const [verb, op] of Object.entries(ops)) {
        expect(Object.keys(op.responses), `${verb} ${path}`).toContain('500');
        for (const [status, r] of Object.entries(op.responses))
          if (Number(status) >= 400)
            expect(Object.keys(r.content ?? {}), `${verb} ${path} ${status}`).toEqual([
              'application/problem+json',
            ]);
      }
    for (const path of ['/v1/recommend', '/recommend', '/v1/simulate', '/v1/check', '/check'])
      expect(Object.keys(doc.paths[path]!.post!.responses), path).toEqual(
        expect.arrayContaining(['200', '400', '404', '413', '415', '429', '500', '503']),
      );
    expect(Object.keys(doc.paths['/v1/recommend']!.post!.responses)).toContain('422');
    expect(Object.keys(doc.paths['/v1/runs/{id}']!.get!.responses)).toContain('414');
  });
});
