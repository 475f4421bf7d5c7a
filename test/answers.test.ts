// Answers an orchestrator can act on: every recommended configuration is one vLLM starts, every
// throughput claim stays under the offered load and the GPU's capacity, and the forest says when it
// extrapolates.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Envelope } from '../src/model/envelope.js';
import { FEATURE_NAMES } from '../src/model/features.js';
import { loadModel, type ModelFile } from '../src/model/model.js';
import { loadProfile } from '../src/profiles/store.js';
import {
  NoServingConfigurationError,
  recommendRequestSchema,
  Recommender,
  type RecommendResponse,
} from '../src/recommend/index.js';
import { bindingLimit } from '../src/recommend/answer.js';
import {
  estimateGpu,
  lengthsFor,
  offeredTokensPerSecond,
  SearchInputError,
  workloadCapacity,
  type EvaluatedPoint,
  type PointSimulator,
} from '../src/search/index.js';
import { requestsPerSecond } from '../src/twin/scenario.js';
import { meanLengths } from '../src/twin/lengths.js';
import { kvCacheTokens } from '../src/twin/profile.js';
import { stubOutcome } from './helpers.js';
import { constantModel } from './models.js';

const PROFILE = 'h100-64gb/llama-3.1-8b-instruct';
const llama = loadProfile(PROFILE);

/**
 * A stand-in twin with the physics that matter here: it completes the offered load up to a fixed
 * share of the capacity bound, and reports starving below 90% of offered.
 */
const physicalTwin: PointSimulator = async (scenario, profile) => {
  const w = scenario.workload;
  const lengths = meanLengths(w.requestLengths, profile.requestLengths);
  const offered =
    requestsPerSecond(w.rates ?? [], w.adapterCount ?? scenario.config.maxCpuLoras) *
    (lengths.prompt + lengths.output);
  const capacity =
    0.7 *
    workloadCapacity(profile, {
      rates: w.rates ?? [],
      ranks: w.ranks ?? [],
      requestLengths: w.requestLengths,
    });
  const throughput = Math.min(offered, capacity);
  return stubOutcome({
    throughputTokensPerSecond: throughput,
    offeredTokensPerSecond: offered,
    starving: throughput < 0.9 * offered,
  });
};

const recommender = (model: ModelFile, simulate: PointSimulator = physicalTwin) =>
  new Recommender({ loadProfile, loadModel: () => model, simulate });
const request = (body: object) => recommendRequestSchema.parse({ profile: PROFILE, ...body });

/** What every answer must satisfy to be acted on. */
function expectActionable(r: RecommendResponse, ranks: number[]) {
  const rec = r.recommendation;
  expect(rec.parallelAdapters).toBeGreaterThanOrEqual(1);
  expect(rec.parallelAdapters).toBeLessThanOrEqual(rec.concurrentAdapters);
  expect(rec.maxLoraRank).toBeGreaterThanOrEqual(Math.max(...ranks));
  expect(kvCacheTokens(llama, rec.parallelAdapters, rec.maxLoraRank)).toBeGreaterThanOrEqual(
    llama.maxModelLen,
  );
  expect(rec.throughputTokensPerSecond).toBeLessThanOrEqual(
    rec.offeredTokensPerSecond * (1 + 1e-9),
  );
  expect(r.vllmArgs).toContain(`--max-loras=${rec.parallelAdapters}`);
}

describe('method model stays inside what vLLM can start and what the GPU can do', () => {
  it('clamps slots that would leave no KV cache (rank 128, the forest asks 85 slots)', async () => {
    const workload = { rates: [0.02], ranks: [128] };
    const r = await recommender(constantModel(llama, workload, 512, 85)).recommend(
      request({ workload, method: 'model' }),
    );
    expectActionable(r, [128]);
    expect(kvCacheTokens(llama, 85, 128)).toBeLessThan(llama.maxModelLen); // the raw answer would not start
    expect(r.recommendation.parallelAdapters).toBeLessThan(85);
    expect(r.explanation.summary).toMatch(/clamped/);
  });

  it('answers 422 when even one adapter offers more than one GPU can complete (rates [1000])', async () => {
    const workload = { rates: [1000], ranks: [16] };
    for (const method of ['model', 'twin', 'auto'] as const) {
      const calls: number[] = [];
      const twin: PointSimulator = (s, p, t) => {
        calls.push(s.config.maxCpuLoras);
        return physicalTwin(s, p, t);
      };
      await expect(
        recommender(constantModel(llama, workload, 512, 64), twin).recommend(
          request({ workload, method }),
        ),
      ).rejects.toThrow(/one GPU|starves/);
      expect(calls).toEqual([]); // decided by the capacity bound: nothing simulated
    }
  });

  it('steps down to the adapters the capacity bound allows and never claims more than it', async () => {
    const workload = { rates: [5], ranks: [16] };
    const r = await recommender(constantModel(llama, workload, 256, 32)).recommend(
      request({ workload, method: 'model' }),
    );
    expectActionable(r, [16]);
    const capacity = workloadCapacity(llama, workload);
    expect(r.recommendation.throughputTokensPerSecond).toBeLessThanOrEqual(capacity);
    // The bound's step: the most adapters whose load it can complete...
    let allowed = 1;
    while (0.9 * offeredTokensPerSecond(llama, workload, allowed + 1) <= capacity) allowed++;
    expect(r.explanation.summary).toContain(`beyond what one GPU can complete`);
    expect(r.explanation.summary).toContain(`so ${allowed} are recommended`);
    // ... and no more after it (the closed-form steady state may step further down).
    expect(r.recommendation.concurrentAdapters).toBeLessThanOrEqual(allowed);
  });

  it('the steady state reads fixed and empirical lengths in closed form', () => {
    // Block size 16: a request holds its prompt, half its output and half a block on average,
    // weighted by its output (the longer it decodes, the longer it stays in the batch).
    expect(llama.blockSize).toBe(16);
    const fixed = lengthsFor(llama, { kind: 'fixed', input: 100, output: 50 });
    expect(fixed.kvPerRunningRequest).toBeCloseTo(100 + 25 + 8, 12);
    const empirical = lengthsFor(llama, {
      kind: 'empirical',
      samples: [
        [100, 50],
        [200, 150],
      ],
    });
    // (50 x 133 + 150 x 283) / 200
    expect(empirical.kvPerRunningRequest).toBeCloseTo(245.5, 12);
    expect(empirical.prompt).toBeCloseTo(150, 12);
    expect(empirical.output).toBeCloseTo(100, 12);
  });

  it('the steady state reads rate groups with their counts as it reads one rate per adapter', () => {
    const lengths = lengthsFor(llama, { kind: 'sharegpt' });
    const groups = [0.4, 0.05, 0.0125];
    // 160 adapters cycle over the groups: 54, 53 and 53 of them.
    const perAdapter = estimateGpu(llama, lengths, {
      rates: Array.from({ length: 160 }, (_, i) => groups[i % 3]!),
      maxLoras: 48,
      maxLoraRank: 16,
    });
    const grouped = estimateGpu(llama, lengths, {
      rates: groups,
      rateCounts: [54, 53, 53],
      maxLoras: 48,
      maxLoraRank: 16,
    });
    for (const k of [
      'throughputTokensPerSecond',
      'offeredTokensPerSecond',
      'busyAdapters',
      'stepMs',
    ] as const)
      expect(grouped[k]).toBeCloseTo(perAdapter[k], 6);
  });

  it("steps to a neighbour the closed-form steady state says serves where it says the forest's pair starves", async () => {
    // 128 adapters at 0.3 req/s on 64 slots: within the capacity bound, but 64 slots of rank 16
    // leave a KV cache too small for the batch the load needs.
    const workload = { rates: [0.3], ranks: [16] };
    const lengths = lengthsFor(llama, { kind: 'sharegpt' });
    const ratio = (c: number, p: number) => {
      const e = estimateGpu(llama, lengths, {
        rates: Array.from({ length: c }, () => 0.3),
        maxLoras: p,
        maxLoraRank: 16,
      });
      return e.throughputTokensPerSecond / e.offeredTokensPerSecond;
    };
    const search = { concurrent: [32, 64, 96, 128], parallel: [16, 32, 64] };
    const r = await recommender(constantModel(llama, workload, 128, 64)).recommend(
      request({ workload, method: 'model', search }),
    );
    expect(ratio(128, 64)).toBeLessThan(0.9);
    const { concurrentAdapters: c, parallelAdapters: p } = r.recommendation;
    expect(ratio(c, p)).toBeGreaterThanOrEqual(0.9);
    // The request's own candidates bound the answer.
    expect(search.concurrent).toContain(c);
    expect(search.parallel).toContain(p);
    // Of the neighbours (96 or 64 adapters on 64 slots, 128 on 32), the most adapters, then slots.
    const serving = [
      [96, 64],
      [64, 64],
      [128, 32],
    ].filter(([cc, pp]) => ratio(cc!, pp!) >= 0.9);
    expect(serving.length).toBeGreaterThan(0);
    const most = serving.reduce((x, y) =>
      y[0]! > x[0]! || (y[0] === x[0] && y[1]! > x[1]!) ? y : x,
    );
    expect([c, p]).toEqual(most);
    expect(r.explanation.summary).toContain(
      'the closed-form steady state says 128 adapters on 64 slots',
    );
    expect(r.vllmArgs).toContain(`--max-cpu-loras=${c}`);
    expect(r.recommendation.throughputTokensPerSecond).toBeLessThanOrEqual(
      r.recommendation.offeredTokensPerSecond,
    );
  });

  it('refuses requests longer than max_model_len, naming the field', async () => {
    const workload = {
      rates: [0.1],
      ranks: [16],
      requestLengths: { kind: 'fixed', input: 1_000_000, output: 1_000_000 },
    };
    const error = await recommender(constantModel(llama, { rates: [0.1], ranks: [16] }, 64, 8))
      .recommend(request({ workload, method: 'model' }))
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SearchInputError);
    expect((error as SearchInputError).field).toBe('workload.requestLengths');
  });
});

describe('the training envelope', () => {
  const narrow: Envelope = {
    features: Object.fromEntries(FEATURE_NAMES.map((f) => [f, [-1e12, 1e12]])),
    rateGroups: [1, 5],
    lengthKinds: ['sharegpt'],
  };
  narrow.features.rankMax = [8, 32];
  const workload = { rates: [0.05], ranks: [64] };

  it('is reported with the features outside it', async () => {
    const r = await recommender(constantModel(llama, workload, 128, 16, 0.95, narrow)).recommend(
      request({ workload, method: 'model' }),
    );
    expect(r.envelope).toBe('outside');
    expect(r.outsideEnvelope).toEqual([{ feature: 'rankMax', value: 64, trained: [8, 32] }]);
    const inside = await recommender(constantModel(llama, workload, 128, 16)).recommend(
      request({ workload, method: 'model' }),
    );
    expect(inside.envelope).toBe('inside');
  });

  it('sends auto to the twin search outside it', async () => {
    const calls: number[] = [];
    const twin: PointSimulator = (s, p, t) => {
      calls.push(s.config.maxCpuLoras);
      return physicalTwin(s, p, t);
    };
    const r = await recommender(
      constantModel(llama, workload, 128, 16, 0.95, narrow),
      twin,
    ).recommend(request({ workload, method: 'auto' }));
    expect(r.method).toBe('auto');
    expect(r.envelope).toBe('outside');
    expect(r.explanation.summary).toMatch(/outside the forest's training envelope/);
    expect(calls.length).toBeGreaterThan(6); // a grid search, not the forest's line
  });
});

describe('1,000 random workloads the API accepts', () => {
  const lengths = fc.oneof(
    fc.constant(undefined),
    fc.record({
      kind: fc.constant('sharegpt' as const),
      scale: fc.double({ min: 0.1, max: 10, noNaN: true }),
    }),
    fc.record({
      kind: fc.constant('fixed' as const),
      input: fc.integer({ min: 1, max: 200_000 }),
      output: fc.integer({ min: 1, max: 20_000 }),
    }),
    fc.record({
      kind: fc.constant('empirical' as const),
      samples: fc.array(
        fc.tuple(fc.integer({ min: 1, max: 8000 }), fc.integer({ min: 1, max: 4000 })),
        { minLength: 1, maxLength: 20 },
      ),
    }),
  );
  const rate = fc.oneof(
    fc.double({ min: 0, max: 0.01, noNaN: true }),
    fc.double({ min: 0, max: 10, noNaN: true }),
    fc.double({ min: 0, max: 1000, noNaN: true }),
  );
  const rank = fc.constantFrom(1, 4, 8, 16, 32, 64, 100, 128, 256, 320, 512, 1024);
  const workload = fc.record(
    {
      rates: fc.array(rate, { minLength: 1, maxLength: 8 }),
      ranks: fc.array(rank, { minLength: 1, maxLength: 8 }),
      requestLengths: lengths,
    },
    { requiredKeys: ['rates', 'ranks'] },
  );

  it('gets no configuration vLLM cannot start from any method', async () => {
    const forest = loadModel(PROFILE);
    const outcomes = { answered: 0, refused: 0 };
    await fc.assert(
      fc.asyncProperty(workload, fc.constantFrom('model', 'twin', 'auto'), async (w, method) => {
        const body = {
          workload: w.requestLengths ? w : { rates: w.rates, ranks: w.ranks },
          method,
        };
        const parsed = recommendRequestSchema.safeParse({ profile: PROFILE, ...body });
        if (!parsed.success) return; // not a body the API accepts
        try {
          const r = await recommender(forest).recommend(parsed.data);
          expectActionable(r, w.ranks);
          expect(r.recommendation.throughputTokensPerSecond).toBeLessThanOrEqual(
            workloadCapacity(llama, w) * (1 + 1e-9),
          );
          outcomes.answered++;
        } catch (e) {
          // Refusals are fine when they say why: no serving pair, or a field at fault.
          if (!(e instanceof NoServingConfigurationError || e instanceof SearchInputError)) throw e;
          outcomes.refused++;
        }
      }),
      { numRuns: 1000, seed: 8 },
    );
    expect(outcomes.answered).toBeGreaterThan(200);
  }, 120_000);
});

describe('the binding limit an answer states', () => {
  const estimate = (ms: number) => ({ ms, lowMs: ms / 2, highMs: ms * 2, sloMs: ms * 1.5 });
  const pair = (c: number, p: number, ttftP99Ms: number, extra: Partial<EvaluatedPoint> = {}) => ({
    concurrentAdapters: c,
    parallelAdapters: p,
    feasible: true,
    simulated: true,
    throughputTokensPerSecond: 100 * c,
    offeredTokensPerSecond: 100 * c,
    starving: false,
    sloViolated: ttftP99Ms * 1.5 > 5000,
    stable: true,
    ttftP99Ms,
    itlP99Ms: 50,
    latency: {
      ttftMs: { p50: estimate(ttftP99Ms / 4), p99: estimate(ttftP99Ms) },
      itlMs: { p50: estimate(20), p99: estimate(50) },
      coverage: 0.9,
      calibrated: true,
      ttftArrivalRealisations: 1,
    },
    ...extra,
  });
  const slo = { ttftP99Ms: 5000 };

  it('names the next pair on the answer line when it was evaluated', () => {
    const best = pair(48, 24, 300);
    const evaluated = [best, pair(64, 24, 60_000, { starving: true }), pair(64, 32, 4000)];
    expect(bindingLimit(best, evaluated, slo, 'paper')).toEqual({
      limit: 'starvation',
      detail: '64 adapters with 24 slots would starve (6400 of 6400 tok/s offered)',
    });
  });

  it('falls back to the nearest busier pair with more slots when the line was not climbed', () => {
    // auto climbed the 32-slot line, then settled on 24 slots at 48 adapters.
    const best = pair(48, 24, 300);
    const evaluated = [best, pair(48, 32, 290), pair(96, 32, 90_000), pair(64, 32, 3750)];
    const binding = bindingLimit(best, evaluated, slo, 'paper');
    expect(binding?.limit).toBe('ttftP99Ms');
    expect(binding?.detail).toBe(
      "64 adapters with 32 slots could reach a p99 TTFT of 5625 ms (90% bound) against the SLO's 5000 ms",
    );
  });

  it('states none when no busier pair was evaluated', () => {
    const best = pair(48, 24, 300);
    expect(bindingLimit(best, [best, pair(32, 32, 200)], slo, 'paper')).toBeUndefined();
  });
});
