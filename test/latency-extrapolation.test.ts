import { describe, expect, it } from 'vitest';
import {
  envelopeDistance,
  growthFor,
  growthIn,
  latencyEnvelopeOf,
  predictLatency,
  type LatencyModel,
  type TwinLatency,
} from '../src/latency/index.js';
import { loadProfile } from '../src/profiles/store.js';
import { recommendRequestSchema, Recommender } from '../src/recommend/index.js';
import type { RunSimulation } from '../src/search/index.js';
import type { Scenario } from '../src/twin/index.js';
import { coverageOf, growthOf, type HeldOutCase } from '../src/validation/regimes.js';
import { measuredCase, stubOutcome, twinLatency } from './helpers.js';
import { constantModel } from './models.js';

/** Intervals and bounds beyond the measured runs (issue 24), on constructed models and runs. */
const measured = measuredCase;
// Measured: 8 to 128 adapters, 8 to 32 slots, rates 0.025 to 0.1 req/s.
const envelope = latencyEnvelopeOf([
  measured({ maxCpuLoras: 8, maxLoras: 8 }),
  measured({ maxCpuLoras: 128, maxLoras: 32 }),
]);

/** The twin's figures as is (no correction), fixed widths, and a known growth per distance. */
const metric = {
  features: [],
  coefficients: [],
  featureRanges: [],
  halfWidthLog: { keepsUp: 0.1, saturated: 0.1 },
  sloQuantileLog: { keepsUp: 0.2, saturated: 0.2 },
  extrapolation: { halfWidthLogPerUnit: 0.5, sloQuantileLogPerUnit: 0.25, runs: 10 },
};
const model: LatencyModel = {
  profile: 'p',
  twinVersion: 't',
  coverage: 0.9,
  source: 'constructed',
  runs: 2,
  workloads: 1,
  envelope,
  metrics: { ttftP50: metric, ttftP99: metric, itlP50: metric, itlP99: metric },
};
const twin = twinLatency();
const at = (maxCpuLoras: number) => ({
  rates: [0.1, 0.05, 0.025],
  ranks: [8, 16],
  config: { maxLoras: 16, maxCpuLoras, maxLoraRank: 16 },
});

describe('widening with the distance from the measured runs', () => {
  it('measures the distance in ln units of the furthest feature, 0 inside', () => {
    expect(envelopeDistance(envelope, at(64))).toEqual({ distance: 0 });
    expect(envelopeDistance(envelope, at(256))).toEqual({
      distance: Math.log(2),
      feature: 'concurrentAdapters',
    });
    // Rates 8x the largest measured are further out than 512 adapters (4x): the rates decide.
    const far = envelopeDistance(envelope, {
      rates: [0.8, 0.8, 0.8],
      ranks: [8],
      config: { maxLoras: 16, maxCpuLoras: 512, maxLoraRank: 16 },
    });
    // The workload's mean (0.8 against 0.0583 measured) is further out than one adapter's rate.
    expect(far.feature).toBe('meanRatePerAdapter');
    expect(far.distance).toBeCloseTo(Math.log(0.8 / (0.175 / 3)), 12);
  });

  it('is zero inside and grows linearly with the distance outside', () => {
    const inside = predictLatency(model, twin, at(64));
    expect(inside.envelope).toBe('inside');
    expect(inside.envelopeDistance).toBeUndefined();
    expect(inside.itlMs.p99.highMs).toBeCloseTo(60 * Math.exp(0.1), 9);
    expect(inside.itlMs.p99.sloMs).toBeCloseTo(60 * Math.exp(0.2), 9);
    for (const [adapters, d] of [
      [256, Math.log(2)],
      [512, Math.log(4)],
    ] as const) {
      const p = predictLatency(model, twin, at(adapters));
      expect(p.envelope).toBe('outside');
      expect(p.envelopeDistance).toBeCloseTo(d, 12);
      expect(p.itlMs.p99.ms).toBe(60);
      expect(p.itlMs.p99.highMs).toBeCloseTo(60 * Math.exp(0.1 + 0.5 * d), 9);
      expect(p.itlMs.p99.lowMs).toBeCloseTo(60 * Math.exp(-(0.1 + 0.5 * d)), 9);
      expect(p.itlMs.p99.sloMs).toBeCloseTo(60 * Math.exp(0.2 + 0.25 * d), 9);
    }
  });

  it("grows by the twin regime's own growth where it has one", () => {
    const saturatedGrowth = { halfWidthLogPerUnit: 1, sloQuantileLogPerUnit: 0.75, runs: 10 };
    const split: LatencyModel = {
      ...model,
      metrics: {
        ...model.metrics,
        itlP99: {
          ...metric,
          extrapolation: { ...metric.extrapolation, perRegime: { saturated: saturatedGrowth } },
        },
      },
    };
    const d = Math.log(2);
    // The twin serves its load: no growth of its own is given, the pooled one applies.
    expect(predictLatency(split, twin, at(256)).itlMs.p99.sloMs).toBeCloseTo(
      60 * Math.exp(0.2 + 0.25 * d),
      9,
    );
    const starving = predictLatency(split, { ...twin, completionRatio: 0.5 }, at(256));
    expect(starving.itlMs.p99.sloMs).toBeCloseTo(60 * Math.exp(0.2 + 0.75 * d), 9);
    expect(starving.itlMs.p99.highMs).toBeCloseTo(60 * Math.exp(0.1 + 1 * d), 9);
  });

  it('a pair in the coming-and-going regime gets an interval at least its realisations wide', () => {
    // The twin keeps up behind a queue (p99 TTFT 3 s): ten realisations from 0.4 to 9 s.
    const queued: TwinLatency = {
      ...twin,
      completionRatio: 0.99,
      ttftMs: { p50: 300, p99: 3000 },
      ttftRealisations: 10,
      ttftP99Spread: { low: 400, high: 9000 },
    };
    const p = predictLatency(model, queued, at(64)).ttftMs.p99;
    expect(p.ms).toBe(3000);
    expect(p.lowMs).toBeLessThanOrEqual(400);
    expect(p.highMs).toBeGreaterThanOrEqual(9000);
    // The SLO is checked against the realisations' upper end, not their median.
    expect(p.sloMs).toBeGreaterThanOrEqual(9000);
    // Outside (512 adapters, ln 4 beyond 128), the growth adds to the realisations' spread.
    const far = predictLatency(model, queued, at(512)).ttftMs.p99;
    const d = Math.log(4);
    expect(far.highMs).toBeCloseTo(9000 * Math.exp(0.5 * d), 6);
    expect(far.lowMs).toBeCloseTo(400 * Math.exp(-0.5 * d), 6);
    expect(far.sloMs).toBeCloseTo(9000 * Math.exp(0.25 * d), 6);
  });

  it('outside, a bound is never under the interval it comes with', () => {
    // A fit whose one-sided bound (x1.05) is tighter than its interval's upper end (x1.35).
    const tight = { ...metric, sloQuantileLog: { keepsUp: 0.05, saturated: 0.05 } };
    const narrow: LatencyModel = {
      ...model,
      metrics: { ...model.metrics, itlP99: { ...tight, extrapolation: undefined } },
    };
    const wide = { ...tight, halfWidthLog: { keepsUp: 0.3, saturated: 0.3 } };
    const wideModel: LatencyModel = {
      ...model,
      metrics: { ...model.metrics, itlP99: { ...wide, extrapolation: undefined } },
    };
    // Inside, the fit's own bound stands.
    expect(predictLatency(wideModel, twin, at(64)).itlMs.p99.sloMs).toBeCloseTo(
      60 * Math.exp(0.05),
      9,
    );
    // Outside, even without a growth, the bound starts at the interval's upper end.
    const outside = predictLatency(wideModel, twin, at(256)).itlMs.p99;
    expect(outside.sloMs).toBeCloseTo(60 * Math.exp(0.3), 9);
    expect(outside.sloMs).toBeCloseTo(outside.highMs, 9);
    // With an interval of x1.1, the bound rises to x1.1.
    expect(predictLatency(narrow, twin, at(256)).itlMs.p99.sloMs).toBeCloseTo(
      60 * Math.exp(0.1),
      9,
    );
  });
});

describe('sizing the growth on held-out regimes', () => {
  const held = (
    residualLog: number,
    distance: number,
    twinRegime: HeldOutCase['twinRegime'] = 'keepsUp',
  ): HeldOutCase => ({
    regime: 'r',
    metric: 'itlP99',
    keepsUp: twinRegime === 'keepsUp',
    twinRegime,
    distance,
    residualLog,
    halfWidthLog: 0.1,
    sloQuantileLog: 0.1,
    predictedMs: 100,
    realMs: 100 * Math.exp(residualLog),
  });

  it('is the smallest growth that brings the held-out runs outside to the coverage', () => {
    // Excess per unit of distance: 0, 0.1, ..., 0.9 over ten runs at distance 1.
    const cases = Array.from({ length: 10 }, (_, i) => held(0.1 + 0.1 * i, 1));
    const g = growthOf(cases, 'itlP99', 0.8);
    expect(g.halfWidthLogPerUnit).toBeCloseTo(0.8, 9);
    expect(coverageOf(cases).coverage).toBeCloseTo(0.1, 9);
    expect(coverageOf(cases, g).coverage).toBeGreaterThanOrEqual(0.8);
    // Runs inside the envelope cannot be helped by growth and do not size it.
    expect(growthFor([{ excessLog: 5, distance: 0 }], 0.9)).toBe(0);
  });

  it('is sized per twin regime where its runs suffice, so one regime does not set the other', () => {
    // Ten runs that keep up, just inside their width; ten saturated, 0.5 over it at distance 1.
    const keeping = Array.from({ length: 10 }, () => held(0.1, 1));
    const saturated = Array.from({ length: 10 }, () => held(0.6, 1, 'saturated'));
    const g = growthOf([...keeping, ...saturated], 'itlP99', 0.8);
    expect(g.perRegime?.keepsUp?.sloQuantileLogPerUnit).toBe(0);
    expect(g.perRegime?.saturated?.sloQuantileLogPerUnit).toBeCloseTo(0.5, 9);
    expect(growthIn(g, 'keepsUp')!.sloQuantileLogPerUnit).toBe(0);
    expect(growthIn(g, 'saturated')!.sloQuantileLogPerUnit).toBeCloseTo(0.5, 9);
    expect(coverageOf([...keeping, ...saturated], g).underBound).toBe(1);
    // Three saturated runs give no finite 80% quantile: that regime reads the pooled growth.
    const few = growthOf([...keeping, ...saturated.slice(0, 3)], 'itlP99', 0.8);
    expect(few.perRegime?.saturated).toBeUndefined();
    expect(growthIn(few, 'saturated')).toBe(few);
  });
});

describe('an SLO answer outside the envelope', () => {
  const llama = loadProfile('h100-64gb/llama-3.1-8b-instruct');
  // Measured: 8 to 16 adapters. Every pair's p99 ITL is 60 ms in the twin; more adapters serve
  // more. Inside, the bound is 60 e^0.2 = 73 ms; at 32 adapters (ln 2 outside) 60 e^0.37 = 87 ms.
  const wide: [number, number] = [1, 1e9];
  const measuredOn = (growth: boolean): LatencyModel => ({
    ...model,
    envelope: {
      ratePerAdapter: [0.1, 0.1],
      meanRatePerAdapter: [0.1, 0.1],
      adapterRank: [16, 16],
      maxLoraRank: [16, 16],
      concurrentAdapters: [8, 16],
      parallelAdapters: [8, 8],
      maxNumBatchedTokens: wide,
      maxNumSeqs: wide,
      durationSeconds: wide,
      requestLengths: ['sharegpt'],
    },
    metrics: Object.fromEntries(
      Object.entries(model.metrics).map(([k, m]) => [
        k,
        growth ? m : { ...m, extrapolation: undefined },
      ]),
    ) as LatencyModel['metrics'],
  });
  const twinRun: RunSimulation = (s: Scenario) =>
    Promise.resolve({
      ...stubOutcome({
        throughputTokensPerSecond: 100 * s.config.maxCpuLoras,
        offeredTokensPerSecond: 100 * s.config.maxCpuLoras,
        starving: false,
      }),
      itlMs: { mean: 20, p50: 18, p99: 60 },
    });
  const recommend = (growth: boolean, itlP99Ms = 80) =>
    new Recommender({
      loadProfile,
      loadModel: () => constantModel(llama, { rates: [0.1], ranks: [16] }, 16, 8),
      loadLatencyModel: () => measuredOn(growth),
      simulate: twinRun,
    }).recommend(
      recommendRequestSchema.parse({
        profile: 'h100-64gb/llama-3.1-8b-instruct',
        workload: { rates: [0.1], ranks: [16] },
        method: 'twin',
        search: { concurrent: [8, 16, 32], parallel: [8] },
        slo: { itlP99Ms },
      }),
    );

  it('steps back to the measured pair where the widened bound breaks the SLO', async () => {
    // Without growth the 32-adapter pair's bound would be 73 ms, under 80: it would be the answer.
    expect((await recommend(false)).recommendation.concurrentAdapters).toBe(32);
    const r = await recommend(true);
    expect(r.recommendation.concurrentAdapters).toBe(16);
    const outside = r.evaluated.find((e) => e.concurrentAdapters === 32)!;
    expect(outside.sloViolated).toBe(true);
    expect(outside.latency!.envelopeDistance).toBeCloseTo(Math.log(2), 12);
    expect(outside.latency!.itlMs.p99.sloMs).toBeCloseTo(
      60 * Math.exp(0.2 + 0.25 * Math.log(2)),
      9,
    );
  });

  it('says in its warnings how far outside an answer lies', async () => {
    // A limit the widened bound of 32 adapters (87 ms) meets: the answer lies ln 2 outside.
    const r = await recommend(true, 100);
    expect(r.recommendation.concurrentAdapters).toBe(32);
    const warning = r.recommendation.warnings.find((w) => w.includes('ln units outside'));
    expect(warning).toContain(
      '0.69 ln units outside them (x2.00 beyond the furthest measured value)',
    );
    expect(warning).toContain("SLO bounds start at their intervals' upper ends");
  });

  it('names the closest pair and its bound when nothing meets the SLO', async () => {
    const none = recommend(true, 70);
    // Inside, 73 ms is the best bound: 5% over 70 ms.
    await expect(none).rejects.toThrow(
      /the closest is (8|16) adapters with 8 slots: p99 ITL bound 73 ms, 5% over the limit/,
    );
  });
});
