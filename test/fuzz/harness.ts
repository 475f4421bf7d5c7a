// Fuzzing the API: no 5xx other than 503 (saturation or time limit), every error a problem+json,
// and every 2xx valid against the route's response schema in the OpenAPI document.
// `npm test` runs FUZZ_BODIES / FUZZ_QUERIES cases per route (defaults below); `npm run fuzz`
// runs 10,000 bodies per POST route and 2,000 query strings per GET route. The routes are split
// over two test files (test/fuzz.test.ts, test/fuzz-recommend.test.ts), each with a service of its
// own, so that vitest runs the halves side by side: one file's requests are mostly main-thread
// validation, which the other's twin work leaves room for.
import { Ajv2020 } from 'ajv/dist/2020.js';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/http/app.js';
import { problemSchema } from '../../src/http/problems.js';
import { ServiceCore } from '../../src/service/core.js';
import { openDatabase } from '../../src/storage/db.js';

const BODIES = Number(process.env.FUZZ_BODIES ?? 400);
/** A valid placement runs a bound search and twin checks: a quarter as many, at most 1,000. */
const PLACEMENT_BODIES = Math.min(1000, Math.ceil(BODIES / 4));
const QUERIES = Number(process.env.FUZZ_QUERIES ?? 150);
const LLAMA = 'h100-64gb/llama-3.1-8b-instruct';

let app: Awaited<ReturnType<typeof buildApp>>;
let core: ServiceCore;
let validate2xx: (method: string, path: string, status: number, body: unknown) => string | null;

/** The service the file's fuzzing runs against, started before its tests and closed after. */
function startService(): void {
  beforeAll(async () => {
    // A short time limit: a generated body that asks for a long search gets its 503 quickly.
    core = new ServiceCore({
      db: openDatabase(':memory:'),
      threads: 2,
      requestTimeoutMs: 3000,
      placementTimeoutMs: 3000,
    });
    app = await buildApp({ core, rateLimitPerMinute: 10_000_000 });
    await app.ready();
    const doc = app.swagger() as { paths: Record<string, Record<string, unknown>> };
    const ajv = new Ajv2020({ strict: false, allErrors: false });
    ajv.addSchema(doc, 'openapi.json');
    const pointer = (s: string) => s.replace(/~/g, '~0').replace(/\//g, '~1');
    const compiled = new Map<string, ReturnType<typeof ajv.compile>>();
    validate2xx = (method, path, status, body) => {
      const key = `${method} ${path} ${status}`;
      let check = compiled.get(key);
      if (!check) {
        check = ajv.compile({
          $ref: `openapi.json#/paths/${pointer(path)}/${method}/responses/${status}/content/${pointer('application/json')}/schema`,
        });
        compiled.set(key, check);
      }
      return check(body) ? null : ajv.errorsText(check.errors);
    };
  }, 60_000);
  afterAll(async () => {
    await app.close();
    await core.close();
  });
}

/** Bodies near the valid shapes (so they reach deep validation and the twin) and arbitrary JSON. */
const number = fc.oneof(
  fc.double(),
  fc.integer(),
  fc.constantFrom(0, -1, 1e9, 0.5, 2048, 8, 16, 0.05),
);
const rate = fc.oneof(number, fc.double({ min: 0, max: 0.2, noNaN: true }));
const lengths = fc.oneof(
  fc.record(
    { kind: fc.constant('sharegpt'), scale: fc.oneof(number, fc.constant(1)) },
    { requiredKeys: ['kind'] },
  ),
  fc.record({ kind: fc.constant('fixed'), input: number, output: number }),
  fc.record({
    kind: fc.constant('empirical'),
    samples: fc.array(fc.tuple(number, number), { maxLength: 4 }),
  }),
  fc.anything(),
);
const nearValid = fc.record(
  {
    profile: fc.oneof(
      fc.constant(LLAMA),
      fc.constant('h100-64gb/qwen-2.5-7b-instruct'),
      fc.string(),
    ),
    config: fc.record(
      {
        maxLoras: fc.oneof(number, fc.constantFrom(8, 16)),
        maxCpuLoras: fc.oneof(number, fc.constantFrom(8, 16, 32)),
        maxLoraRank: fc.oneof(number, fc.constantFrom(8, 16, 32, 7, 64, 128)),
      },
      { requiredKeys: [] },
    ),
    workload: fc.record(
      {
        rates: fc.array(rate, { maxLength: 5 }),
        ranks: fc.array(fc.oneof(number, fc.constantFrom(8, 16, 32, 64)), { maxLength: 5 }),
        adapterCount: number,
        requestLengths: lengths,
      },
      { requiredKeys: [] },
    ),
    durationSeconds: fc.oneof(number, fc.constantFrom(5, 60)),
    method: fc.constantFrom('model', 'model', 'twin', 'auto', 'other'),
    search: fc.record(
      {
        concurrent: fc.array(fc.oneof(number, fc.constantFrom(8, 16)), { maxLength: 3 }),
        parallel: fc.array(fc.oneof(number, fc.constantFrom(8, 16)), { maxLength: 3 }),
      },
      { requiredKeys: [] },
    ),
    starvationThreshold: number,
    slo: fc.record({ ttftP99Ms: number, itlP99Ms: number }, { requiredKeys: [] }),
    extra: fc.anything(),
  },
  { requiredKeys: [] },
);
/**
 * Valid bodies, so that the 2xx property is exercised: small workloads from a few rate and rank
 * values, so the twin's cache answers most repeats.
 */
const smallRates = fc.array(fc.constantFrom(0.01, 0.05, 0.1, 0.4), { minLength: 1, maxLength: 2 });
const smallRanks = fc.array(fc.constantFrom(8, 16), { minLength: 1, maxLength: 2 });
const validLengths = fc.constantFrom(
  undefined,
  { kind: 'sharegpt' },
  { kind: 'fixed', input: 200, output: 100 },
  {
    kind: 'empirical',
    samples: [
      [100, 50],
      [300, 200],
    ],
  },
);
const validBodies: Record<string, fc.Arbitrary<unknown>> = {
  '/v1/simulate': fc
    .record({
      maxLoras: fc.integer({ min: 1, max: 16 }),
      extra: fc.integer({ min: 0, max: 16 }),
      rates: smallRates,
      ranks: smallRanks,
      lengths: validLengths,
      durationSeconds: fc.integer({ min: 1, max: 120 }),
    })
    .map((v) => ({
      profile: LLAMA,
      config: { maxLoras: v.maxLoras, maxCpuLoras: v.maxLoras + v.extra, maxLoraRank: 16 },
      workload: {
        rates: v.rates,
        ranks: v.ranks,
        ...(v.lengths ? { requestLengths: v.lengths } : {}),
      },
      durationSeconds: v.durationSeconds,
    })),
  '/v1/recommend': fc
    .record({
      rates: smallRates,
      ranks: smallRanks,
      lengths: validLengths,
      method: fc.constantFrom('model', 'model', 'model', 'twin', 'auto'),
      objective: fc.constantFrom(undefined, 'paper', 'stable'),
      slo: fc.option(fc.record({ ttftP99Ms: fc.constantFrom(500, 5000) }), { nil: undefined }),
    })
    .map((v) => ({
      profile: LLAMA,
      workload: {
        rates: v.rates,
        ranks: v.ranks,
        ...(v.lengths ? { requestLengths: v.lengths } : {}),
      },
      method: v.method,
      search: { concurrent: [8, 16], parallel: [8] },
      // The forest checks neither an SLO nor stability (400): only the twin-backed methods get them.
      ...(v.method !== 'model' && v.slo ? { slo: v.slo } : {}),
      ...(v.method !== 'model' && v.objective ? { objective: v.objective } : {}),
    })),
  '/v1/check': fc
    // Each new workload costs a recommendation to compare with: a handful, then cached.
    .record({
      rates: fc.constantFrom([0.05], [0.1], [0.1, 0.05]),
      ranks: fc.constant([16]),
      maxLoras: fc.constantFrom(8, 16),
    })
    .map((v) => ({
      profile: LLAMA,
      workload: { rates: v.rates, ranks: v.ranks },
      config: { maxLoras: v.maxLoras, maxCpuLoras: 16, maxLoraRank: 16 },
    })),
};

/** Placement bodies: small catalogs from a few rates (cache-friendly), and broken ones. */
const placementValid = fc
  .record({
    adapters: fc.array(
      fc.record({
        rate: fc.constantFrom(0, 0.05, 0.5, 2),
        rank: fc.constantFrom(8, 16, 64),
      }),
      { minLength: 1, maxLength: 3 },
    ),
    objective: fc.constantFrom(undefined, 'paper', 'stable'),
    gpuBudget: fc.constantFrom(undefined, 1, 2),
  })
  .map((v) => ({
    profile: LLAMA,
    catalog: v.adapters.map((a, i) => ({ id: `a${i}`, ...a })),
    ...(v.objective ? { objective: v.objective } : {}),
    ...(v.gpuBudget ? { gpuBudget: v.gpuBudget } : {}),
  }));
const placementNearValid = fc.record(
  {
    profile: fc.oneof(fc.constant(LLAMA), fc.string()),
    catalog: fc.oneof(
      fc.array(
        fc.record(
          {
            id: fc.oneof(fc.constantFrom('a', 'b', ''), fc.string()),
            rate: fc.oneof(number, fc.constant(0.1)),
            rank: fc.oneof(number, fc.constantFrom(8, 1024, 7)),
          },
          { requiredKeys: [] },
        ),
        { maxLength: 4 },
      ),
      fc.anything(),
    ),
    gpuBudget: number,
    current: fc.oneof(
      fc.array(fc.record({ adapters: fc.array(fc.constantFrom('a', 'b', 'zz')) }), {
        maxLength: 2,
      }),
      fc.anything(),
    ),
    starvationThreshold: number,
  },
  { requiredKeys: ['profile', 'catalog'] },
);

/** POST /v1/profiles: catalog GPUs and models, configs with fields dropped or bent, flags. */
const profileValid = fc.record(
  {
    gpu: fc.oneof(fc.constantFrom('a100-80gb-sxm', 'l40s', 'h200', 'l4', 'b200'), fc.string()),
    model: fc.constantFrom(
      'llama-3.1-8b-instruct',
      'qwen3-8b',
      'mistral-7b-instruct-v0.3',
      'gemma-2-9b-it',
    ),
    flags: fc.record(
      {
        gpuMemoryUtilization: fc.oneof(fc.double({ min: 0.05, max: 1, noNaN: true }), number),
        maxModelLen: fc.oneof(fc.integer({ min: 512, max: 131072 }), number),
        maxNumSeqs: fc.oneof(fc.integer({ min: 1, max: 4096 }), number),
      },
      { requiredKeys: [] },
    ),
  },
  { requiredKeys: ['gpu'] },
);
const profileConfig = fc.record(
  {
    gpu: fc.constantFrom('h100-80gb-sxm', 'a10g'),
    config: fc.record(
      {
        architectures: fc.oneof(fc.constant(['LlamaForCausalLM']), fc.anything()),
        num_hidden_layers: fc.oneof(fc.integer({ min: 1, max: 80 }), fc.anything()),
        hidden_size: fc.oneof(fc.constantFrom(2048, 4096, 5120), fc.anything()),
        intermediate_size: fc.oneof(fc.integer({ min: 1, max: 30000 }), fc.anything()),
        num_attention_heads: fc.oneof(fc.constantFrom(16, 32, 40), fc.anything()),
        num_key_value_heads: fc.constantFrom(1, 8, 7),
        vocab_size: fc.integer({ min: 1, max: 300000 }),
        max_position_embeddings: fc.integer({ min: 1, max: 1 << 20 }),
        num_experts: fc.constantFrom(0, 8),
        sliding_window: fc.oneof(fc.constant(null), fc.integer()),
      },
      { requiredKeys: ['architectures'] },
    ),
  },
  { requiredKeys: ['gpu', 'config'] },
);

/** Each POST route: its valid and near-valid bodies, how many to send, the share answered 2xx. */
const postRoutes = [
  {
    path: '/v1/simulate',
    seed: 1,
    valid: validBodies['/v1/simulate']!,
    near: nearValid,
    runs: BODIES,
    answered: 1 / 4,
  },
  {
    path: '/v1/recommend',
    seed: 2,
    valid: validBodies['/v1/recommend']!,
    near: nearValid,
    runs: BODIES,
    answered: 1 / 4,
  },
  {
    path: '/v1/check',
    seed: 3,
    valid: validBodies['/v1/check']!,
    near: nearValid,
    runs: BODIES,
    answered: 1 / 4,
  },
  {
    path: '/v1/profiles',
    seed: 5,
    valid: profileValid as fc.Arbitrary<unknown>,
    near: profileConfig as fc.Arbitrary<unknown>,
    // A derivation replays the caching allocator for every slot count and rank (0.1-1 s each):
    // a twentieth of the bodies keeps the full-size run within CI's minutes.
    runs: Math.max(50, Math.round(BODIES / 20)),
    // Most generated configs and flags are refused by field, which is what this route is for.
    answered: 1 / 40,
  },
  {
    path: '/v1/placement',
    seed: 4,
    valid: placementValid as fc.Arbitrary<unknown>,
    near: placementNearValid as fc.Arbitrary<unknown>,
    runs: PLACEMENT_BODIES,
    answered: 1 / 5,
  },
];

/** Fuzzes the POST routes among `paths`, against a service of the calling file's own. */
export function fuzzPostRoutes(paths: readonly string[]): void {
  const routes = postRoutes.filter((r) => paths.includes(r.path));
  if (routes.length !== paths.length)
    throw new Error(`no fuzzing defined for some of ${paths.join(', ')}`);
  startService();
  fuzzPosts(routes);
}

/** Fuzzes the POST routes among `paths` and every GET route's query strings. */
export function fuzzPostAndGetRoutes(paths: readonly string[]): void {
  fuzzPostRoutes(paths);
  fuzzGets();
}

function fuzzPosts(routes: typeof postRoutes): void {
  describe('fuzzed POST bodies', () => {
    it.each(routes)(
      '$runs bodies to $path: no 5xx but 503, problems well formed, 2xx on schema',
      async ({ path, seed, valid, near, runs, answered: share }) => {
        const body = fc.oneof(
          { arbitrary: valid, weight: 2 },
          { arbitrary: near, weight: 2 },
          { arbitrary: fc.jsonValue(), weight: 1 },
        );
        let answered = 0;
        await fc.assert(
          fc.asyncProperty(body, async (payload) => {
            const res = await app.inject({
              method: 'POST',
              url: path,
              payload: JSON.stringify(payload),
              headers: { 'content-type': 'application/json' },
            });
            const what = `${res.statusCode}: ${res.body.slice(0, 300)} for ${JSON.stringify(payload).slice(0, 300)}`;
            if (res.statusCode >= 500 && res.statusCode !== 503) throw new Error(what);
            if (res.statusCode >= 400) problemSchema.parse(res.json());
            else {
              answered++;
              const error = validate2xx('post', path, res.statusCode, res.json());
              if (error) throw new Error(`off-schema 2xx (${error}): ${what}`);
            }
          }),
          { numRuns: runs, seed },
        );
        // The schema property only means something if many bodies were answered.
        expect(answered).toBeGreaterThan(runs * share);
      },
      1_800_000,
    );
  });
}

function fuzzGets(): void {
  describe('fuzzed GET query strings', () => {
    const routes: Array<[string, string]> = [
      ['/v1/runs', '/v1/runs'],
      ['/v1/runs/{id}', '/v1/runs/x'],
      ['/v1/runs/{id}/chart.svg', '/v1/runs/x/chart.svg'],
      ['/v1/runs/{id}/deploy', '/v1/runs/x/deploy'],
      ['/v1/profiles', '/v1/profiles'],
      ['/v1/models', '/v1/models'],
      ['/healthz', '/healthz'],
      ['/readyz', '/readyz'],
    ];
    it.each(routes)(
      `${QUERIES} query strings to %s`,
      async (route, url) => {
        const query = fc.oneof(
          fc.string(),
          fc
            .record(
              {
                kind: fc.oneof(fc.constantFrom('recommend', 'simulate', 'check'), fc.string()),
                profile: fc.string(),
                limit: fc.oneof(fc.integer(), fc.string()),
                cursor: fc.string(),
                target: fc.oneof(
                  fc.constantFrom('vllm', 'kubernetes', 'production-stack'),
                  fc.string(),
                ),
                namespace: fc.string(),
              },
              { requiredKeys: [] },
            )
            .map((q) =>
              new URLSearchParams(
                Object.entries(q).map(([k, v]): [string, string] => [k, String(v)]),
              ).toString(),
            ),
        );
        await fc.assert(
          fc.asyncProperty(query, async (q) => {
            const res = await app.inject({ url: `${url}?${encodeURI(q)}` });
            const what = `${res.statusCode}: ${res.body.slice(0, 200)} for ${url}?${q}`;
            if (res.statusCode >= 500 && res.statusCode !== 503) throw new Error(what);
            if (res.statusCode >= 400) problemSchema.parse(res.json());
            else if (res.headers['content-type']?.toString().includes('json')) {
              const error = validate2xx('get', route, res.statusCode, res.json());
              if (error) throw new Error(`off-schema 2xx (${error}): ${what}`);
            }
          }),
          { numRuns: QUERIES, seed: 7 },
        );
      },
      600_000,
    );

    it('keeps runs answered under fuzzing listable and each one readable', async () => {
      const { runs } = (await app.inject({ url: '/v1/runs?limit=200' })).json() as {
        runs: Array<{ id: string }>;
      };
      for (const r of runs.slice(0, 20)) {
        const res = await app.inject({ url: `/v1/runs/${r.id}` });
        expect(res.statusCode).toBe(200);
        expect(validate2xx('get', '/v1/runs/{id}', 200, res.json())).toBeNull();
      }
    });
  });
}
