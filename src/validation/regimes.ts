// Leave-regime-out validation of the latency model (validate:twin): whole regimes held out of the
// fit, the way a user's workload lies beyond the measured ones, and the growth of intervals and
// bounds with the distance from the fitting runs sized on those errors.
import {
  boundStartOutside,
  coarseOf,
  envelopeDistance,
  fitLatencyModel,
  regimeOf,
  type LatencyRegime,
  enoughForQuantile,
  growthFor,
  growthIn,
  KEEPS_UP_RATIO,
  predictLatency,
  widened,
  type Extrapolation,
  type Growth,
  type LatencyModel,
  type LatencyObservation,
} from '../latency/index.js';
import { LATENCY_COVERAGE } from './latency.js';

/** The metrics whose intervals the regimes test: an SLO is set on p99s, p50s come with them. */
export const EXTRAPOLATED_METRICS = ['ttftP50', 'ttftP99', 'itlP50', 'itlP99'] as const;
export type ExtrapolatedMetric = (typeof EXTRAPOLATED_METRICS)[number];

/** A set of runs held out of the fit together. */
export interface HeldOutRegime {
  name: string;
  holds: (o: LatencyObservation) => boolean;
}

const meanRate = (o: LatencyObservation) => {
  const rates = o.measured.rates.filter((r) => r > 0);
  return rates.reduce((s, r) => s + r, 0) / Math.max(1, rates.length);
};

/**
 * The regimes: the lightest and the heaviest workloads (every workload, of either model, whose
 * rates per adapter are the lowest or the highest measured: 16x apart), so the fit sees only the
 * other rates; the largest adapter counts (every run at the two largest --max-cpu-loras); and
 * each --max-lora-rank.
 */
export function heldOutRegimes(observations: readonly LatencyObservation[]): HeldOutRegime[] {
  const regimes: HeldOutRegime[] = [];
  const byRate = (o: LatencyObservation) => Number(meanRate(o).toPrecision(6));
  const rates = [...new Set(observations.map(byRate))].sort((a, b) => a - b);
  if (rates.length > 1) {
    const [lightest, heaviest] = [rates[0]!, rates[rates.length - 1]!];
    regimes.push(
      {
        name: `lightest workloads (mean ${lightest} req/s per adapter)`,
        holds: (o) => byRate(o) === lightest,
      },
      {
        name: `heaviest workloads (mean ${heaviest} req/s per adapter)`,
        holds: (o) => byRate(o) === heaviest,
      },
    );
  }
  const counts = [...new Set(observations.map((o) => o.measured.maxCpuLoras))].sort(
    (a, b) => b - a,
  );
  const largest = counts.slice(0, 2);
  regimes.push({
    name: `largest adapter counts (--max-cpu-loras ${[...largest].reverse().join(', ')})`,
    holds: (o) => largest.includes(o.measured.maxCpuLoras),
  });
  for (const rank of [...new Set(observations.map((o) => o.measured.maxLoraRank))].sort(
    (a, b) => a - b,
  ))
    regimes.push({
      name: `--max-lora-rank ${rank}`,
      holds: (o) => o.measured.maxLoraRank === rank,
    });
  return regimes;
}

/** One held-out run's prediction by a model fitted without its regime. */
export interface HeldOutCase {
  regime: string;
  metric: ExtrapolatedMetric;
  keepsUp: boolean;
  /** The twin's regime for the pair: where it keeps up or saturates (what a prediction reads). */
  twinRegime: LatencyRegime;
  /** ln-distance from the fitting runs' envelope. */
  distance: number;
  /** ln(real / predicted). */
  residualLog: number;
  /** The interval's and the bound's widths before any growth, ln units. */
  halfWidthLog: number;
  sloQuantileLog: number;
  predictedMs: number;
  realMs: number;
}

const KEY: Record<ExtrapolatedMetric, (p: ReturnType<typeof predictLatency>) => number[]> = {
  // [ms, highMs, sloMs]
  ttftP50: (p) => [p.ttftMs.p50.ms, p.ttftMs.p50.highMs, p.ttftMs.p50.sloMs],
  ttftP99: (p) => [p.ttftMs.p99.ms, p.ttftMs.p99.highMs, p.ttftMs.p99.sloMs],
  itlP50: (p) => [p.itlMs.p50.ms, p.itlMs.p50.highMs, p.itlMs.p50.sloMs],
  itlP99: (p) => [p.itlMs.p99.ms, p.itlMs.p99.highMs, p.itlMs.p99.sloMs],
};

/**
 * Every regime held out in turn: the latency model fitted on the other runs (as fitPooled fits),
 * then each held-out run predicted as the service would, with the distance of its case from the
 * fitting runs' envelope. A regime whose removal leaves too few runs for a bound is skipped and
 * named in `skipped`.
 */
export function holdOutRegimes(
  observations: readonly LatencyObservation[],
  realRatioOf: (o: LatencyObservation) => number,
  meta: { twinVersion: string; source: string },
): { cases: HeldOutCase[]; regimes: string[]; skipped: Array<{ regime: string; why: string }> } {
  const cases: HeldOutCase[] = [];
  const regimes: string[] = [];
  const skipped: Array<{ regime: string; why: string }> = [];
  for (const regime of heldOutRegimes(observations)) {
    const rest = observations.filter((o) => !regime.holds(o));
    const held = observations.filter((o) => regime.holds(o));
    let models: Record<string, LatencyModel>;
    try {
      models = fitLatencyModel(rest, { ...meta, coverage: LATENCY_COVERAGE }).models;
    } catch (e) {
      skipped.push({ regime: regime.name, why: e instanceof Error ? e.message : String(e) });
      continue;
    }
    regimes.push(regime.name);
    for (const o of held) {
      const model = models[o.profile];
      if (!model) continue;
      // The fit's own widths, as inside (no widening), and the case's distance beside them: the
      // widening is what the report measures, so it is applied there (coverageOf).
      const simulated = {
        rates: o.measured.rates,
        ranks: o.measured.ranks,
        config: {
          maxLoras: o.measured.maxLoras,
          maxCpuLoras: o.measured.maxCpuLoras,
          maxLoraRank: o.measured.maxLoraRank,
          maxNumBatchedTokens: o.measured.maxNumBatchedTokens,
          maxNumSeqs: o.measured.maxNumSeqs,
        },
      };
      const prediction = predictLatency(model, o.twin);
      const distance = envelopeDistance(model.envelope, simulated).distance;
      for (const metric of EXTRAPOLATED_METRICS) {
        const [ms, highMs, sloMs] = KEY[metric](prediction) as [number, number, number];
        const real = o.real[metric];
        if (!(ms > 0) || !(real > 0)) continue;
        cases.push({
          regime: regime.name,
          metric,
          keepsUp: realRatioOf(o) >= KEEPS_UP_RATIO,
          twinRegime: coarseOf(regimeOf(o.twin)),
          distance,
          residualLog: Math.log(real / ms),
          halfWidthLog: Math.log(highMs / ms),
          sloQuantileLog: Math.log(sloMs / ms),
          predictedMs: ms,
          realMs: real,
        });
      }
    }
  }
  return { cases, regimes, skipped };
}

/** The growth per unit of distance that brings the cases' coverage to the target. */
function growthOfCases(cases: readonly HeldOutCase[], coverage: number): Growth {
  return {
    halfWidthLogPerUnit: round(
      growthFor(
        cases.map((c) => ({
          excessLog: Math.abs(c.residualLog) - c.halfWidthLog,
          distance: c.distance,
        })),
        coverage,
      ),
    ),
    sloQuantileLogPerUnit: round(
      growthFor(
        cases.map((c) => ({
          excessLog: c.residualLog - boundStartOutside(c),
          distance: c.distance,
        })),
        coverage,
      ),
    ),
    runs: cases.filter((c) => c.distance > 0).length,
  };
}

/**
 * A metric's growth: pooled over every held-out run, and per twin regime where that regime's
 * runs outside are enough for the quantile (as the widths are split, so is their growth).
 */
export function growthOf(
  cases: readonly HeldOutCase[],
  metric: ExtrapolatedMetric,
  coverage = LATENCY_COVERAGE,
): Extrapolation {
  const mine = cases.filter((c) => c.metric === metric);
  const perRegime: NonNullable<Extrapolation['perRegime']> = {};
  for (const regime of ['keepsUp', 'saturated'] as const) {
    const theirs = mine.filter((c) => c.twinRegime === regime);
    if (enoughForQuantile(theirs.filter((c) => c.distance > 0).length, coverage))
      perRegime[regime] = growthOfCases(theirs, coverage);
  }
  return { ...growthOfCases(mine, coverage), perRegime };
}

const round = (x: number) => Number(x.toFixed(5));

/**
 * Coverage of a set of held-out cases as the service widens them outside (the bound from at least
 * the interval's upper end, then the growth); without a growth, the fit's own widths.
 */
export function coverageOf(cases: readonly HeldOutCase[], growth?: Extrapolation) {
  let inside = 0;
  let under = 0;
  let ape = 0;
  for (const c of cases) {
    const own = { halfWidthLog: c.halfWidthLog, sloQuantileLog: c.sloQuantileLog };
    const w = growth ? widened(own, c.distance, growthIn(growth, c.twinRegime)) : own;
    if (Math.abs(c.residualLog) <= w.halfWidthLog + 1e-9) inside++;
    if (c.residualLog <= w.sloQuantileLog + 1e-9) under++;
    ape += Math.abs(c.predictedMs - c.realMs) / c.realMs;
  }
  const n = cases.length;
  return {
    runs: n,
    mape: n > 0 ? (100 * ape) / n : NaN,
    coverage: n > 0 ? inside / n : NaN,
    underBound: n > 0 ? under / n : NaN,
  };
}

/**
 * Each regime's coverage with the growth sized on the other regimes only: the growth is itself
 * validated out of sample, as a user's regime was never among those it was sized on.
 */
export function nestedCoverage(
  cases: readonly HeldOutCase[],
  regimes: readonly string[],
  metric: ExtrapolatedMetric,
  subset: (c: HeldOutCase) => boolean = () => true,
) {
  return regimes.map((regime) => {
    const mine = cases.filter((c) => c.metric === metric && c.regime === regime && subset(c));
    const growth = growthOf(
      cases.filter((c) => c.regime !== regime),
      metric,
    );
    const distances = mine.map((c) => c.distance).sort((a, b) => a - b);
    return {
      regime,
      medianDistance: distances.length ? distances[Math.floor(distances.length / 2)]! : 0,
      before: coverageOf(mine),
      after: coverageOf(mine, growth),
      growth,
    };
  });
}
