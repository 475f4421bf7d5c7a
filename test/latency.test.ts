import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadLatencyModel } from '../src/profiles/latency.js';
import {
  CEILING_MIN_COMPLETION,
  conformalHalfWidth,
  conformalUpper,
  fitLatencyModel,
  latencyEnvelopeOf,
  latencyFeatures,
  predictLatency,
  QUEUEING_TTFT_MS,
  type LatencyMetric,
  type LatencyModel,
  type LatencyObservation,
  type MeasuredCase,
  type MetricModel,
  type TwinLatency,
} from '../src/latency/index.js';
import { evaluatedPoint } from '../src/search/index.js';
import { parseScenario } from '../src/runtime/scenario-runner.js';
import { measuredCase, stubOutcome, twinLatency } from './helpers.js';
import { scratchDir } from './scratch.js';

/** A measured run's workload and flags for a constructed twin: the generator's, at its pair. */
const measuredOf = (t: TwinLatency): MeasuredCase =>
  measuredCase({ maxLoras: t.maxLoras, maxCpuLoras: t.maxCpuLoras, maxLoraRank: t.maxLoraRank });

const twin = twinLatency;

/** A run of workload `w` whose real figures are the twin's, but for p99 ITL. */
const realItlP99 = (w: string, t: TwinLatency, itlP99: number): LatencyObservation => ({
  workload: w,
  profile: 'p',
  twin: t,
  measured: measuredOf(t),
  real: { ttftP50: t.ttftMs.p50, ttftP99: t.ttftMs.p99, itlP50: t.itlMs.p50, itlP99 },
});

describe('split-conformal bounds', () => {
  it('one-sided: the ceil((n + 1) * coverage)-th smallest signed residual', () => {
    const residuals = Array.from({ length: 19 }, (_, i) => (i - 9) / 10); // -0.9 .. 0.9
    expect(conformalUpper(residuals, 0.9)).toBeCloseTo(0.8, 12); // k = 18
  });

  it('is the ceil((n + 1) * coverage)-th smallest absolute residual', () => {
    const residuals = Array.from({ length: 19 }, (_, i) => (i + 1) / 10); // 0.1 .. 1.9
    // n = 19, coverage 0.9: k = ceil(20 * 0.9) = 18 -> 1.8
    expect(conformalHalfWidth(residuals, 0.9)).toBeCloseTo(1.8, 12);
    // Too few residuals for the coverage: no finite bound.
    expect(conformalHalfWidth([0.1, 0.2, 0.3], 0.9)).toBe(Infinity);
  });
});

describe('latency correction', () => {
  /**
   * Real p99 ITL = twin p99 ITL * slots^0.3, exactly, over eight workloads: the fit must recover
   * the exponent out of fold, and every interval must cover.
   */
  const observations: LatencyObservation[] = [];
  for (let w = 0; w < 8; w++)
    for (const [maxLoras, completionRatio] of [
      [8, 1],
      [16, 1],
      [32, 1],
      [64, 1],
      [128, 1],
      [32, 0.8], // saturated runs: the fit ignores them, their interval is their own
      [64, 0.7],
    ] as const) {
      const t = twin({
        maxLoras,
        completionRatio,
        maxCpuLoras: maxLoras * (w + 1),
        itlMs: { mean: 20 + w, p50: 18 + w, p99: 60 + 5 * w },
      });
      observations.push({
        workload: `w${w}`,
        profile: 'test/gpu',
        twin: t,
        measured: measuredOf(t),
        real: {
          ttftP50: t.ttftMs.p50 * (1 + 0.05 * ((w % 3) - 1)),
          ttftP99: t.ttftMs.p99 * (1 + 0.1 * ((w % 3) - 1)),
          itlP50: t.itlMs.p50 * Math.pow(maxLoras, 0.1),
          itlP99: t.itlMs.p99 * Math.pow(maxLoras, 0.3),
        },
      });
    }
  const fit = fitLatencyModel(observations, {
    twinVersion: 'test',
    source: 'constructed',
    coverage: 0.9,
  });
  const model = fit.models['test/gpu']!;

  it('recovers a log-linear client-side factor leave-one-workload-out', () => {
    for (const o of fit.outOfFold) {
      expect(o.predicted.itlP99 / o.observation.real.itlP99).toBeCloseTo(1, 6);
      expect(o.covered.itlP99).toBe(true);
    }
    const m = model.metrics.itlP99;
    expect(m.coefficients[m.features.indexOf('logMaxLoras')]!).toBeCloseTo(0.3, 6);
  });

  it('leaves p50 TTFT uncorrected and sizes its interval from the out-of-fold errors', () => {
    expect(model.metrics.ttftP50.features).toEqual([]);
    // Errors of 0, +5% and -5%: the 90% half-width is the largest |ln(real / twin)|, ln(1 / 0.95).
    expect(Math.exp(model.metrics.ttftP50.halfWidthLog.keepsUp)).toBeCloseTo(1 / 0.95, 4);
    const covered = fit.outOfFold.filter((o) => o.covered.ttftP50).length;
    expect(covered / fit.outOfFold.length).toBeGreaterThanOrEqual(0.9);
  });

  it('fits no weight to a queue regime no run is in, instead of failing', () => {
    // Every constructed twin queue is bounded (p99 TTFT 400 ms).
    const m = model.metrics.ttftP99;
    expect(m.coefficients[m.features.indexOf('twinQueueGrows')]).toBe(0);
    expect(m.coefficients[m.features.indexOf('logShortfallIfGrows')]).toBe(0);
  });
});

/** ITL figures that vary across runs, so no ITL feature is collinear with another. */
const varied = (a: number, b: number) => ({
  mean: 20 + a + (b % 7),
  p50: 18,
  p99: 60 + 3 * a * a + 5 * (b % 5),
});

describe('p99 TTFT in the two regimes of the queue', () => {
  it('reads the regime from the twin: a few steps under 2 s, a backlog from 2 s', () => {
    const bounded = latencyFeatures(twin({ maxCpuLoras: 64, ttftMs: { p50: 100, p99: 1999 } }));
    expect(bounded.twinQueueBounded).toBe(1);
    expect(bounded.twinQueueGrows).toBe(0);
    expect(bounded.logAdaptersOver16IfBounded).toBeCloseTo(Math.log(64 / 16), 12);
    // Up to 16 adapters the twin's own figure: a server of 1 adapter is promised no better.
    const few = latencyFeatures(twin({ maxCpuLoras: 1, ttftMs: { p50: 100, p99: 400 } }));
    expect(few.logAdaptersOver16IfBounded).toBe(0);
    expect(bounded.logShortfallIfGrows).toBe(0);
    const grows = latencyFeatures(
      twin({ completionRatio: 0.97, ttftMs: { p50: 900, p99: QUEUEING_TTFT_MS } }),
    );
    expect(grows.twinQueueBounded).toBe(0);
    expect(grows.logAdaptersOver16IfBounded).toBe(0);
    // 3% of the load left behind.
    expect(grows.logShortfallIfGrows).toBeCloseTo(Math.log(0.03), 12);
    // A transient queue with everything completed is floored, not ln 0.
    const transient = latencyFeatures(twin({ ttftMs: { p50: 900, p99: 5000 } }));
    expect(transient.logShortfallIfGrows).toBeCloseTo(Math.log(0.002), 12);
    // --max-lora-rank counts behind a queue that comes and goes only (the twin keeps up), centred
    // on the measured ranks 16 and 32.
    const queued = (maxLoraRank: number, completionRatio = 1) =>
      latencyFeatures(twin({ maxLoraRank, completionRatio, ttftMs: { p50: 900, p99: 5000 } }))
        .logMaxLoraRankIfKeepsUpQueued;
    expect(queued(32)).toBeCloseTo(Math.log(2) / 2, 12);
    expect(queued(16)).toBeCloseTo(-Math.log(2) / 2, 12);
    expect(queued(32, 0.9)).toBe(0); // falls behind: the hour's shortfall, not the rank
    expect(latencyFeatures(twin({ maxLoraRank: 32 })).logMaxLoraRankIfKeepsUpQueued).toBe(0);
  });

  it("recovers each regime's law leave-one-workload-out", () => {
    // Bounded: real = twin x e^0.2 x (adapters / 16)^0.8 from 16 adapters on.
    // Growing: real = twin x e^1 x shortfall^0.3 x (rank / 16)^0.4, at ranks 16 and 32. Both stay
    // above the twin's p50.
    const observations: LatencyObservation[] = [];
    for (let w = 0; w < 6; w++)
      for (const adapters of [16, 32, 64, 128]) {
        const bounded = twin({
          // Every value in two workloads: a held-out one stays inside the others' range.
          maxCpuLoras: adapters * (1 + (w % 3)),
          ttftMs: { p50: 50, p99: 100 },
          itlMs: varied(w, adapters),
        });
        const completionRatio = 0.955 + 0.01 * Math.log2(adapters / 16) + 0.002 * (w % 3);
        const grows = twin({
          maxCpuLoras: adapters,
          maxLoraRank: (w + adapters / 16) % 2 ? 32 : 16,
          completionRatio,
          ttftMs: { p50: 20_000, p99: 60_000 + 1000 * w },
          itlMs: varied(w + 1, adapters * 3),
        });
        const real = (t: TwinLatency, p99: number) => ({
          ttftP50: t.ttftMs.p50,
          ttftP99: p99,
          itlP50: t.itlMs.p50,
          itlP99: t.itlMs.p99,
        });
        const n = bounded.maxCpuLoras;
        // A saturated run: outside the fit, but its regime needs residuals for an interval.
        const saturated = twin({ completionRatio: 0.6, ttftMs: { p50: 9e5, p99: 2e6 } });
        observations.push(
          {
            workload: `w${w}`,
            profile: 'p',
            twin: saturated,
            measured: measuredOf(saturated),
            real: real(saturated, 2e6),
          },
          {
            workload: `w${w}`,
            profile: 'p',
            twin: bounded,
            measured: measuredOf(bounded),
            real: real(bounded, 100 * Math.exp(0.2) * (n / 16) ** 0.8),
          },
          {
            workload: `w${w}`,
            profile: 'p',
            twin: grows,
            measured: measuredOf(grows),
            real: real(
              grows,
              grows.ttftMs.p99 *
                Math.exp(1) *
                (1 - completionRatio) ** 0.3 *
                (grows.maxLoraRank / 16) ** 0.4,
            ),
          },
        );
      }
    const fit = fitLatencyModel(observations, { twinVersion: 't', source: 'c', coverage: 0.9 });
    for (const o of fit.outOfFold.filter((o) => o.observation.twin.completionRatio > 0.95))
      expect(o.predicted.ttftP99 / o.observation.real.ttftP99).toBeCloseTo(1, 6);
    const m = fit.models.p!.metrics.ttftP99;
    const coefficient = (f: string) => m.coefficients[m.features.indexOf(f as never)]!;
    expect(coefficient('logAdaptersOver16IfBounded')).toBeCloseTo(0.8, 6);
    expect(coefficient('logShortfallIfGrows')).toBeCloseTo(0.3, 6);
    expect(coefficient('logMaxLoraRankIfKeepsUpQueued')).toBeCloseTo(0.4, 6);
    // Below the ranks it was fitted on, the correction reads rank 16: it never promises less.
    const queued = (maxLoraRank: number) =>
      predictLatency(
        fit.models.p!,
        twin({ maxLoraRank, completionRatio: 0.97, ttftMs: { p50: 20_000, p99: 60_000 } }),
      ).ttftMs.p99.ms;
    // (Up to the 1e-4 the stored feature ranges are widened by.)
    expect(queued(8) / queued(16)).toBeCloseTo(1, 4);
    expect(queued(32) / queued(16)).toBeCloseTo(2 ** 0.4, 6);
  });
});

describe('a p99 ITL that levels off', () => {
  // real = twin x slots^0.5 bent under 600 ms: v / (1 + (v / 600)^2)^(1/2).
  const bend = (v: number) => v / Math.sqrt(1 + (v / 600) ** 2);
  const observations: LatencyObservation[] = [];
  for (let w = 0; w < 8; w++) {
    // Saturated runs: outside the fit, but their regime needs residuals for an interval.
    for (const b of [3, 5]) {
      const saturated = twin({ completionRatio: 0.6, itlMs: varied(w, b) });
      observations.push({
        workload: `w${w}`,
        profile: 'p',
        twin: saturated,
        measured: measuredOf(saturated),
        real: {
          ttftP50: saturated.ttftMs.p50,
          ttftP99: saturated.ttftMs.p99,
          itlP50: saturated.itlMs.p50,
          itlP99: saturated.itlMs.p99,
        },
      });
    }
    for (const maxLoras of [8, 16, 32, 64, 128, 256]) {
      const t = twin({
        maxLoras,
        maxCpuLoras: maxLoras * (1 + (w % 3)),
        itlMs: varied(w, maxLoras),
      });
      observations.push(realItlP99(`w${w}`, t, bend(t.itlMs.p99 * Math.sqrt(maxLoras))));
    }
  }
  const serving = (o: LatencyObservation) => o.twin.completionRatio === 1;
  const fit = fitLatencyModel(observations, { twinVersion: 't', source: 'c', coverage: 0.9 });
  const m = fit.models.p!.metrics.itlP99;

  it('recovers the level and the law under it leave-one-workload-out', () => {
    expect(m.ceiling?.ms).toBeCloseTo(600, 2);
    expect(m.ceiling!.coefficients[m.features.indexOf('logMaxLoras')]!).toBeCloseTo(0.5, 4);
    for (const o of fit.outOfFold.filter((o) => serving(o.observation)))
      expect(o.predicted.itlP99 / o.observation.real.itlP99).toBeCloseTo(1, 4);
    // Every figure sits under the level, where the unbent law would pass it.
    const largest = Math.max(...observations.filter(serving).map((o) => o.real.itlP99));
    expect(largest).toBeLessThan(600);
  });

  it('bends only where the twin serves its load, by hand', () => {
    // A correction of x10 under a 800 ms ceiling where the twin serves; x2 below.
    const model = fit.models.p!;
    const itlP99: MetricModel = {
      ...model.metrics.itlP99,
      features: ['intercept'],
      coefficients: [Math.log(2)],
      featureRanges: [[1, 1]],
      ceiling: { ms: 800, coefficients: [Math.log(10)] },
    };
    const ceiled: LatencyModel = { ...model, metrics: { ...model.metrics, itlP99 } };
    const at = (completionRatio: number) =>
      predictLatency(ceiled, twin({ completionRatio, itlMs: { mean: 20, p50: 18, p99: 100 } }))
        .itlMs.p99.ms;
    // 1000 ms bent under 800: 1000 / sqrt(1 + 1.25^2) = 624.695 ms.
    expect(at(1)).toBeCloseTo(1000 / Math.sqrt(1 + 1.25 ** 2), 9);
    expect(at(CEILING_MIN_COMPLETION)).toBeCloseTo(1000 / Math.sqrt(1 + 1.25 ** 2), 9);
    // Deeper in saturation the log-linear correction, unbent: 200 ms.
    expect(at(0.85)).toBeCloseTo(200, 9);
  });

  it('keeps no ceiling the data do not show', () => {
    // The same runs following twin x slots^0.5 with no level.
    const unbent = observations.map((o) =>
      serving(o)
        ? { ...o, real: { ...o.real, itlP99: o.twin.itlMs.p99 * Math.sqrt(o.twin.maxLoras) } }
        : o,
    );
    const plain = fitLatencyModel(unbent, { twinVersion: 't', source: 'c', coverage: 0.9 });
    expect(plain.models.p!.metrics.itlP99.ceiling).toBeUndefined();
  });
});

describe('intervals per profile', () => {
  it("sizes each profile's interval from its own residuals", () => {
    // One correction for both (none fits better than the twin here), errors of ±2% on one
    // profile and ±40% on the other: a pooled quantile would under-cover the second.
    const observations: LatencyObservation[] = [];
    for (let w = 0; w < 6; w++)
      for (const [profile, error] of [
        ['narrow', 0.02],
        ['wide', 0.4],
      ] as const)
        for (let k = 0; k < 5; k++) {
          const t = twin({
            maxLoras: 8 << k,
            maxCpuLoras: (8 << k) * (1 + ((w + k) % 4)),
            itlMs: varied(w, k),
            completionRatio: k >= 3 ? 0.7 : 1,
          });
          const factor = 1 + error * (((w + k) % 3) - 1);
          observations.push({
            workload: `${profile}/w${w}`,
            profile,
            twin: t,
            measured: measuredOf(t),
            real: {
              ttftP50: t.ttftMs.p50 * factor,
              ttftP99: t.ttftMs.p99,
              itlP50: t.itlMs.p50,
              itlP99: t.itlMs.p99,
            },
          });
        }
    const fit = fitLatencyModel(observations, { twinVersion: 't', source: 'c', coverage: 0.9 });
    const width = (p: string) => Math.exp(fit.models[p]!.metrics.ttftP50.halfWidthLog.keepsUp);
    // Keeps-up runs: k = 0..2 of each workload, one error of -1, 0 and +1 times the spread each.
    expect(width('narrow')).toBeCloseTo(1 / 0.98, 4);
    expect(width('wide')).toBeCloseTo(1 / 0.6, 4);
    for (const profile of ['narrow', 'wide']) {
      const own = fit.outOfFold.filter((o) => o.observation.profile === profile);
      expect(own.filter((o) => o.covered.ttftP50).length / own.length).toBeGreaterThanOrEqual(0.9);
    }
  });
});

describe('TTFT intervals per queue regime', () => {
  // Twins that keep up, half with a bounded queue (p99 TTFT 400 ms, errors of ±2%) and half
  // queued (p99 TTFT 60 s, errors of ±40%); ITL errors of ±10% in both. One TTFT interval over
  // both would be too wide for the first and too narrow for the second.
  const observations: LatencyObservation[] = [];
  for (let w = 0; w < 6; w++)
    for (let k = 0; k < 10; k++) {
      const queued = k >= 5;
      const t = twin({
        maxLoras: 8 << (k % 5),
        maxCpuLoras: (8 << (k % 5)) * (1 + ((w + k) % 4)),
        itlMs: varied(w, k),
        ttftMs: queued ? { p50: 20_000, p99: 60_000 } : { p50: 100, p99: 400 },
        completionRatio: k === 4 || k === 9 ? 0.7 : 1,
      });
      const sign = ((w + k) % 3) - 1;
      const ttft = 1 + (queued ? 0.4 : 0.02) * sign;
      observations.push({
        workload: `w${w}`,
        profile: 'p',
        twin: t,
        measured: measuredOf(t),
        real: {
          ttftP50: t.ttftMs.p50 * ttft,
          ttftP99: t.ttftMs.p99 * ttft,
          itlP50: t.itlMs.p50 * (1 + 0.1 * sign),
          itlP99: t.itlMs.p99 * (1 + 0.1 * sign),
        },
      });
    }
  const fit = fitLatencyModel(observations, { twinVersion: 't', source: 'c', coverage: 0.9 });
  const m = fit.models.p!.metrics;

  it('sizes each queue regime from its own runs, and ITL from the regime alone', () => {
    expect(Math.exp(m.ttftP50.halfWidthLog.keepsUpBounded!)).toBeCloseTo(1 / 0.98, 4);
    expect(Math.exp(m.ttftP50.halfWidthLog.keepsUpQueued!)).toBeCloseTo(1 / 0.6, 4);
    // Six saturated runs in each queue regime: too few for a finite 90% bound, so those cells are
    // absent and the twelve saturated runs together size the interval.
    expect(m.ttftP50.halfWidthLog.saturatedQueued).toBeUndefined();
    expect(m.ttftP50.halfWidthLog.saturatedBounded).toBeUndefined();
    expect(m.itlP50.halfWidthLog.keepsUpBounded).toBeUndefined();
    const bounded = predictLatency(fit.models.p!, observations[0]!.twin).ttftMs.p50;
    expect(bounded.highMs / bounded.ms).toBeCloseTo(1 / 0.98, 4);
    const queued = predictLatency(fit.models.p!, observations[5]!.twin).ttftMs.p50;
    expect(queued.highMs / queued.ms).toBeCloseTo(1 / 0.6, 4);
    // A saturated pair reads the coarse regime's interval.
    const saturated = predictLatency(fit.models.p!, observations[9]!.twin).ttftMs.p50;
    expect(saturated.highMs / saturated.ms).toBeCloseTo(
      Math.exp(m.ttftP50.halfWidthLog.saturated),
      9,
    );
  });

  it('covers each regime out of fold', () => {
    for (const queuedRuns of [false, true]) {
      const own = fit.outOfFold.filter(
        (o) =>
          o.observation.twin.completionRatio === 1 &&
          o.observation.twin.ttftMs.p99 >= QUEUEING_TTFT_MS === queuedRuns,
      );
      expect(own.filter((o) => o.covered.ttftP50).length / own.length).toBeGreaterThanOrEqual(0.9);
    }
  });
});

describe('p99 ITL bounds per predicted level', () => {
  // Twins that keep up: half with a short tail (p99 ITL 40-64 ms, errors of ±4%), half with a long
  // one (400-640 ms, errors of ±40%), as the share of the gap no engine step makes grows with the
  // load. One pooled bound would give every short tail the long ones' margin.
  const observations: LatencyObservation[] = [];
  for (let w = 0; w < 6; w++)
    for (let k = 0; k < 12; k++) {
      const long = k >= 6;
      const p99 = (long ? 400 : 40) * (1 + 0.1 * ((w + k) % 7));
      const t = twin({
        maxLoras: 8 << (k % 3),
        maxCpuLoras: (8 << (k % 3)) * (1 + ((w + k) % 4)),
        itlMs: { mean: p99 / 3, p50: p99 / 4, p99 },
        completionRatio: k === 5 || k === 11 ? 0.7 : 1,
      });
      const sign = ((w + k) % 3) - 1;
      observations.push(realItlP99(`w${w}`, t, p99 * (1 + (long ? 0.4 : 0.04) * sign)));
    }
  const fit = fitLatencyModel(observations, { twinVersion: 't', source: 'c', coverage: 0.9 });
  const m = fit.models.p!.metrics;

  it('sizes the short and the long tails from their own runs, where the twin keeps up', () => {
    const level = m.itlP99.levelSplit!;
    expect(level.ms).toBeGreaterThan(64);
    expect(level.ms).toBeLessThan(400);
    // The pooled bound (x1.52 here) would hold the short tails to the long ones' margin.
    expect(Math.exp(m.itlP99.sloQuantileLog.keepsUp)).toBeGreaterThan(1.3);
    expect(Math.exp(level.sloQuantileLog.below)).toBeLessThan(1.15);
    expect(Math.exp(level.sloQuantileLog.above)).toBeGreaterThan(1.3);
    // Only p99 ITL is split by level.
    expect(m.itlP50.levelSplit).toBeUndefined();
    expect(m.ttftP99.levelSplit).toBeUndefined();
    const short = predictLatency(fit.models.p!, observations[0]!.twin).itlMs.p99;
    expect(short.sloMs / short.ms).toBeCloseTo(
      Math.exp(Math.max(0, level.sloQuantileLog.below)),
      9,
    );
    const long = predictLatency(fit.models.p!, observations[6]!.twin).itlMs.p99;
    expect(long.sloMs / long.ms).toBeCloseTo(Math.exp(Math.max(0, level.sloQuantileLog.above)), 9);
    // A saturated pair reads its regime's bound, whatever its level.
    const saturated = predictLatency(fit.models.p!, observations[5]!.twin).itlMs.p99;
    expect(saturated.sloMs / saturated.ms).toBeCloseTo(
      Math.exp(Math.max(0, m.itlP99.sloQuantileLog.saturated)),
      9,
    );
  });

  it('keeps each level under its bound out of fold', () => {
    for (const longTails of [false, true]) {
      const own = fit.outOfFold.filter(
        (o) =>
          o.observation.twin.completionRatio === 1 &&
          o.observation.twin.itlMs.p99 >= 400 === longTails,
      );
      expect(own.length).toBe(30);
      expect(own.filter((o) => o.underSloBound.itlP99).length / own.length).toBeGreaterThanOrEqual(
        0.9,
      );
    }
  });
});

describe('latency predictions and the SLO', () => {
  const model: LatencyModel = {
    profile: 'test/gpu',
    twinVersion: 'test',
    coverage: 0.9,
    source: 'constructed',
    runs: 0,
    workloads: 0,
    envelope: latencyEnvelopeOf([measuredOf(twin())]),
    metrics: {
      ttftP50: {
        features: [],
        coefficients: [],
        featureRanges: [],
        halfWidthLog: { keepsUp: 0, saturated: 0 },
        sloQuantileLog: { keepsUp: 0, saturated: 0 },
      },
      ttftP99: {
        features: [],
        coefficients: [],
        featureRanges: [],
        halfWidthLog: { keepsUp: Math.log(2), saturated: Math.log(10) },
        sloQuantileLog: { keepsUp: Math.log(1.5), saturated: Math.log(8) },
      },
      itlP50: {
        features: [],
        coefficients: [],
        featureRanges: [],
        halfWidthLog: { keepsUp: 0, saturated: 0 },
        sloQuantileLog: { keepsUp: 0, saturated: 0 },
      },
      // Twice the twin's p99 ITL, within x/÷ 1.5, and under x 1.25 in 90% of cases.
      itlP99: {
        features: ['intercept'],
        coefficients: [Math.log(2)],
        featureRanges: [[1, 1]],
        halfWidthLog: { keepsUp: Math.log(1.5), saturated: Math.log(3) },
        sloQuantileLog: { keepsUp: Math.log(1.25), saturated: Math.log(2) },
      },
    },
  };

  it('applies the correction and the regime of the interval', () => {
    const p = predictLatency(model, twin());
    expect(p.itlMs.p99.ms).toBeCloseTo(120, 9);
    expect(p.itlMs.p99.highMs).toBeCloseTo(180, 9);
    expect(p.itlMs.p99.lowMs).toBeCloseTo(80, 9);
    expect(p.itlMs.p99.sloMs).toBeCloseTo(150, 9);
    expect(p.ttftMs.p99.highMs).toBeCloseTo(800, 9);
    // A twin that does not keep up gets the wider, saturated interval.
    const saturated = predictLatency(model, twin({ completionRatio: 0.8 }));
    expect(saturated.ttftMs.p99.highMs).toBeCloseTo(4000, 9);
    expect(p.calibrated).toBe(true);
  });

  /** The model above with another correction for one metric, its intervals kept. */
  const withCorrection = (
    metric: LatencyMetric,
    correction: Pick<MetricModel, 'features' | 'coefficients' | 'featureRanges'>,
  ): LatencyModel => ({
    ...model,
    metrics: { ...model.metrics, [metric]: { ...model.metrics[metric], ...correction } },
  });

  it('never extrapolates the correction past the slots it was fitted on', () => {
    // p99 ITL = twin x slots^0.3, fitted on 8 to 128 slots.
    const fitted = withCorrection('itlP99', {
      features: ['logMaxLoras'],
      coefficients: [0.3],
      featureRanges: [[Math.log(8), Math.log(128)]],
    });
    const p99 = (maxLoras: number) => predictLatency(fitted, twin({ maxLoras })).itlMs.p99.ms;
    expect(p99(32)).toBeCloseTo(60 * 32 ** 0.3, 9);
    // One slot is corrected as 8 are, 512 as 128 are: flat past the measurements.
    expect(p99(1)).toBeCloseTo(60 * 8 ** 0.3, 9);
    expect(p99(512)).toBeCloseTo(60 * 128 ** 0.3, 9);
  });

  it('never predicts a p99 under its own p50', () => {
    // A p50 correction of x10 and x2 for the p99: the p99 (120 ms) is raised to the p50 (180 ms).
    const skewed = withCorrection('itlP50', {
      features: ['intercept'],
      coefficients: [Math.log(10)],
      featureRanges: [[1, 1]],
    });
    const p = predictLatency(skewed, twin({ itlMs: { mean: 20, p50: 18, p99: 60 } }));
    expect(p.itlMs.p50.ms).toBeCloseTo(180, 9);
    expect(p.itlMs.p99.ms).toBeCloseTo(180, 9);
    expect(p.itlMs.p99.highMs).toBeCloseTo(180 * 1.5, 9);
  });

  it("without a model returns the twin's figures, marked uncalibrated", () => {
    const p = predictLatency(undefined, twin());
    expect(p.calibrated).toBe(false);
    expect(p.itlMs.p99).toEqual({ ms: 60, lowMs: 60, highMs: 60, sloMs: 60 });
  });

  it('a pair meets an SLO only when the upper bound does', () => {
    const outcome = {
      ...stubOutcome({
        throughputTokensPerSecond: 100,
        offeredTokensPerSecond: 100,
        starving: false,
      }),
      itlMs: { mean: 20, p50: 18, p99: 60 },
      ttftMs: { mean: 100, p50: 100, p99: 400 },
      meanRunningRequests: 20,
    };
    // Predicted p99 ITL 120 ms, 90% bound 150 ms: a 140 ms SLO is met by the point, not the bound.
    // The measured case itself, so inside the envelope: the bound is the fit's own.
    const scenario = parseScenario({
      profile: 'test/gpu',
      config: { maxCpuLoras: 64, maxLoras: 16, maxLoraRank: 16 },
      workload: { rates: [0.1, 0.05, 0.025], ranks: [8, 16] },
    });
    const tight = evaluatedPoint(scenario, outcome, {
      slo: { itlP99Ms: 140 },
      latencyModel: model,
    });
    expect(tight.itlP99Ms).toBeCloseTo(120, 9);
    expect(tight.sloViolated).toBe(true);
    const loose = evaluatedPoint(scenario, outcome, {
      slo: { itlP99Ms: 150 },
      latencyModel: model,
    });
    expect(loose.sloViolated).toBe(false);
  });
});

describe('the shipped latency files', () => {
  it('an unreadable or outdated file leaves answers uncalibrated instead of failing them', () => {
    const dir = scratchDir('latency-');
    mkdirSync(join(dir, 'gpu'), { recursive: true });
    writeFileSync(join(dir, 'gpu', 'old.json'), JSON.stringify({ profile: 'gpu/old' }));
    writeFileSync(join(dir, 'gpu', 'broken.json'), '{ not json');
    expect(loadLatencyModel('gpu/old', dir)).toBeUndefined();
    expect(loadLatencyModel('gpu/broken', dir)).toBeUndefined();
    expect(loadLatencyModel('gpu/absent', dir)).toBeUndefined();
    // A shipped model with a ceiling whose coefficients do not line up with its features.
    const shipped = loadLatencyModel('h100-64gb/llama-3.1-8b-instruct')!;
    const ceiling = shipped.metrics.itlP99.ceiling!;
    const misaligned = {
      ...shipped,
      profile: 'gpu/misaligned',
      metrics: {
        ...shipped.metrics,
        itlP99: {
          ...shipped.metrics.itlP99,
          ceiling: { ...ceiling, coefficients: ceiling.coefficients.slice(1) },
        },
      },
    };
    writeFileSync(join(dir, 'gpu', 'misaligned.json'), JSON.stringify(misaligned));
    expect(loadLatencyModel('gpu/misaligned', dir)).toBeUndefined();
  });

  it('the shipped profiles have a latency model that parses', () => {
    for (const id of ['h100-64gb/llama-3.1-8b-instruct', 'h100-64gb/qwen-2.5-7b-instruct'])
      expect(loadLatencyModel(id)?.metrics.itlP99.features.length).toBeGreaterThan(0);
  });
});
