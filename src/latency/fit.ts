import { levenbergMarquardt } from '../stats/nls.js';
import { independentColumns, ols } from '../stats/ols.js';
import { median } from '../stats/index.js';
import {
  KEEPS_UP_RATIO,
  LATENCY_METRICS,
  LEVEL_SPLIT_METRICS,
  latencyFeatures,
  pointPredictions,
  QUEUE_REGIMES,
  QUEUE_SPLIT_METRICS,
  coarseOf,
  regimeOf,
  twinValue,
  underCeilingLog,
  type LatencyFeature,
  type LatencyMetric,
  type LatencyModel,
  type MetricModel,
  type PerRegime,
  type TwinLatency,
} from './model.js';
import { latencyEnvelopeOf, type MeasuredCase } from './envelope.js';
import { enoughForQuantile } from './extrapolation.js';

const ITL_FEATURES: readonly LatencyFeature[] = [
  'intercept',
  'logMaxLoras',
  'logTwinMeanItlMs',
  'logTwinItlTail',
  'logAdaptersPerSlot',
  'logMaxLoraRank',
];

/** One real run beside the twin's simulation of it. */
export interface LatencyObservation {
  workload: string;
  /**
   * The profile (GPU and model) the run belongs to. The correction is pooled over profiles, but
   * each profile's intervals come from its own residuals: one model's errors are wider than
   * another's, and a pooled quantile under-covers the wider one.
   */
  profile: string;
  twin: TwinLatency;
  real: Record<LatencyMetric, number>;
  /** The run's workload and flags: the profile's envelope is read from its runs. */
  measured: MeasuredCase;
}

/**
 * Which features correct which metric (docs/latency.md).
 * - p99 TTFT: two regimes of the twin's queue. With a bounded queue the real tail grows with the
 *   adapters served while the twin's stays flat; with a growing one, TTFT is the backlog's, which
 *   scales with the share of the load the twin leaves behind; where the twin keeps up, it also
 *   grows with --max-lora-rank (a step cost the twin does not separate, as in ITL, draining each
 *   burst more slowly).
 * - p50 TTFT: no correction beat the twin's own figure out of fold, so it is taken as is and only
 *   given an interval.
 * - ITL: the engine's step times are right at the median but the client-side tail widens with
 *   slots and requests in flight, and every step is slower at a higher --max-lora-rank, which the
 *   twin's step terms do not separate. The p99 also depends on the twin's queue regime: a twin
 *   whose queue grows runs a larger batch than the real server did.
 */
// The ITL features were chosen among subsets of eight candidates, and the TTFT and ITL regime
// terms among a handful, by this same out-of-fold error (docs/latency.md), which makes the
// reported figures slightly optimistic.
export const CORRECTED_FEATURES: Record<LatencyMetric, readonly LatencyFeature[]> = {
  ttftP50: [],
  ttftP99: [
    'twinQueueBounded',
    'twinQueueGrows',
    'logAdaptersOver16IfBounded',
    'logShortfallIfGrows',
    'logMaxLoraRankIfKeepsUpQueued',
  ],
  itlP50: ITL_FEATURES,
  itlP99: [...ITL_FEATURES, 'twinQueueGrows'],
};

/**
 * Metrics whose correction bends under a fitted ceiling (docs/latency.md): the real p99 ITL of
 * servers that keep up levels off at 0.7-0.9 s once 128 or more slots serve 192 or more
 * adapters.
 */
const WITH_CEILING: readonly LatencyMetric[] = ['itlP99'];

/** A fitted ceiling this many times the largest figure it was fitted on is no ceiling. */
const NO_CEILING_ABOVE = 10;

const keepsUp = (o: LatencyObservation) => o.twin.completionRatio >= KEEPS_UP_RATIO;
const usable = (o: LatencyObservation, metric: LatencyMetric) =>
  o.real[metric] > 0 && twinValue(o.twin, metric) > 0;

/**
 * Least squares of ln(real / twin) on the features, over runs where the twin keeps up; for a
 * metric with a ceiling, the coefficients and the ceiling are fitted together (Levenberg-Marquardt
 * from the log-linear fit, on the same log errors).
 */
function fitCoefficients(
  rows: readonly LatencyObservation[],
  metric: LatencyMetric,
  features: readonly LatencyFeature[],
): Pick<MetricModel, 'coefficients' | 'featureRanges' | 'ceiling'> {
  if (features.length === 0) return { coefficients: [], featureRanges: [] };
  const fitRows = rows.filter((o) => keepsUp(o) && usable(o, metric));
  // Too few runs for the features: no correction rather than a singular fit.
  if (fitRows.length < 2 * features.length)
    return { coefficients: features.map(() => 0), featureRanges: features.map(() => [0, 0]) };
  const xs = fitRows.map((o) => {
    const x = latencyFeatures(o.twin);
    return features.map((f) => x[f]);
  });
  // A feature the earlier ones already determine (a regime no fit run is in leaves its features
  // all zero; a constant one repeats the intercept) gets no weight instead of a singular design.
  const ys = fitRows.map((o) => Math.log(o.real[metric] / twinValue(o.twin, metric)));
  const kept = independentColumns(xs);
  const design = xs.map((x) => kept.map((k) => x[k]!));
  const fitted = ols(design, ys, false).coefficients;
  const spread = (c: readonly number[]) =>
    features.map((_, j) => (kept.includes(j) ? c[kept.indexOf(j)]! : 0));
  let ceiling: MetricModel['ceiling'];
  if (WITH_CEILING.includes(metric)) {
    const logTwin = fitRows.map((o) => Math.log(twinValue(o.twin, metric)));
    const logReal = fitRows.map((o) => Math.log(o.real[metric]));
    // Parameters: the kept coefficients, then the log of the level (started from the log-linear
    // fit and the largest real figure, where a ceiling first bites).
    const nls = levenbergMarquardt(
      (p) =>
        design.map(
          (x, i) =>
            underCeilingLog(
              logTwin[i]! + x.reduce((s, v, j) => s + v * p[j]!, 0),
              p[kept.length]!,
            ) - logReal[i]!,
        ),
      [...fitted, Math.max(...logReal)],
    );
    const ms = Math.exp(nls.parameters[kept.length]!);
    // A level far above every measured figure bends none of them: the data show no ceiling.
    if (ms <= NO_CEILING_ABOVE * Math.exp(Math.max(...logReal)))
      ceiling = { ms, coefficients: spread(nls.parameters.slice(0, kept.length)) };
  }
  return {
    ...(ceiling ? { ceiling } : {}),
    coefficients: spread(fitted),
    featureRanges: features.map((_, j): [number, number] => [
      Math.min(...xs.map((x) => x[j]!)),
      Math.max(...xs.map((x) => x[j]!)),
    ]),
  };
}

/** The k-th smallest |residual| with k = ceil((n + 1) * coverage): split-conformal. */
export function conformalHalfWidth(absResiduals: readonly number[], coverage: number): number {
  const n = absResiduals.length;
  if (n === 0) return Infinity;
  const k = Math.ceil((n + 1) * coverage);
  if (k > n) return Infinity;
  return [...absResiduals].sort((a, b) => a - b)[k - 1]!;
}

/** One-sided split-conformal: the ceil((n + 1) * coverage)-th smallest signed residual. */
export function conformalUpper(residuals: readonly number[], coverage: number): number {
  const n = residuals.length;
  const k = Math.ceil((n + 1) * coverage);
  if (n === 0 || k > n) return Infinity;
  return [...residuals].sort((a, b) => a - b)[k - 1]!;
}

export interface OutOfFold {
  observation: LatencyObservation;
  /** Predictions of a model fitted without this run's workload. */
  predicted: Record<LatencyMetric, number>;
  /** Whether the run's real value lies inside the interval built without its workload. */
  covered: Record<LatencyMetric, boolean>;
  /** Whether it lies under the one-sided SLO bound built without its workload. */
  underSloBound: Record<LatencyMetric, boolean>;
}

export interface LatencyFit {
  /** Per profile: the pooled correction with that profile's own intervals. */
  models: Record<string, LatencyModel>;
  outOfFold: OutOfFold[];
}

const emptyMetrics = <T>(f: (m: LatencyMetric) => T): Record<LatencyMetric, T> =>
  Object.fromEntries(LATENCY_METRICS.map((m) => [m, f(m)])) as Record<LatencyMetric, T>;

/**
 * Fits the correction on all runs, and measures it leave-one-workload-out: each workload's runs
 * are predicted by a model fitted on the other workloads, and covered by an interval whose width
 * comes from the out-of-fold residuals of the other workloads of the same profile only.
 */
export function fitLatencyModel(
  observations: readonly LatencyObservation[],
  meta: { twinVersion: string; source: string; coverage: number },
): LatencyFit {
  const workloads = [...new Set(observations.map((o) => o.workload))];
  const split = (o: LatencyObservation) => regimeOf(o.twin);
  const coarse = (o: LatencyObservation) => coarseOf(split(o));
  /** Enough residuals for a finite bound at the coverage. */
  const enough = (n: number) => enoughForQuantile(n, meta.coverage);

  const predicted = observations.map(() => emptyMetrics(() => NaN));
  for (const w of workloads) {
    const others = observations.filter((o) => o.workload !== w);
    const fold = emptyMetrics((metric): MetricModel => ({
      features: [...CORRECTED_FEATURES[metric]],
      ...fitCoefficients(others, metric, CORRECTED_FEATURES[metric]),
      halfWidthLog: { keepsUp: 0, saturated: 0 },
      sloQuantileLog: { keepsUp: 0, saturated: 0 },
    }));
    // The service's own predictions (predictLatency), from a model that never saw workload w.
    observations.forEach((o, i) => {
      if (o.workload === w) predicted[i] = pointPredictions(fold, o.twin);
    });
  }
  const signed = (i: number, metric: LatencyMetric) =>
    Math.log(observations[i]!.real[metric] / predicted[i]![metric]);
  const residual = (i: number, metric: LatencyMetric) => Math.abs(signed(i, metric));
  const usableIdx = (metric: LatencyMetric, include: (o: LatencyObservation) => boolean) =>
    observations
      .map((o, i) => i)
      .filter(
        (i) =>
          include(observations[i]!) &&
          usable(observations[i]!, metric) &&
          predicted[i]![metric] > 0,
      );

  /**
   * LEVEL_SPLIT_METRICS: the runs of `idx` on the same side of their median prediction as `ms`
   * (undefined where that side is too few for a bound).
   */
  const levelHalf = (idx: number[], metric: LatencyMetric, ms: number) => {
    const levelMs = median(idx.map((i) => predicted[i]![metric]));
    const side = idx.filter((i) => predicted[i]![metric] < levelMs === ms < levelMs);
    return enough(side.length) ? side : undefined;
  };

  // The residuals an interval for o is sized from: other workloads of its profile in its regime,
  // split by the queue or by the predicted level for the metrics that are (where those runs allow
  // a finite bound), as the service reads its intervals (widthsFor).
  const poolFor = (o: LatencyObservation, i: number, metric: LatencyMetric) => {
    const near = (x: LatencyObservation) => x.workload !== o.workload && x.profile === o.profile;
    if (LEVEL_SPLIT_METRICS.includes(metric) && coarse(o) === 'keepsUp') {
      const keepsUp = usableIdx(metric, (x) => near(x) && coarse(x) === 'keepsUp');
      const half = levelHalf(keepsUp, metric, predicted[i]![metric]);
      if (half) return half;
    }
    if (QUEUE_SPLIT_METRICS.includes(metric)) {
      const same = usableIdx(metric, (x) => near(x) && split(x) === split(o));
      if (enough(same.length)) return same;
    }
    return usableIdx(metric, (x) => near(x) && coarse(x) === coarse(o));
  };

  const outOfFold: OutOfFold[] = observations.map((o, i) => ({
    observation: o,
    predicted: predicted[i]!,
    covered: emptyMetrics((metric) => {
      if (!usable(o, metric) || !(predicted[i]![metric] > 0)) return false;
      const others = poolFor(o, i, metric).map((j) => residual(j, metric));
      // 1e-9: rounding noise must not uncover an exact prediction.
      return residual(i, metric) <= conformalHalfWidth(others, meta.coverage) + 1e-9;
    }),
    underSloBound: emptyMetrics((metric) => {
      if (!usable(o, metric) || !(predicted[i]![metric] > 0)) return false;
      const others = poolFor(o, i, metric).map((j) => signed(j, metric));
      return signed(i, metric) <= Math.max(0, conformalUpper(others, meta.coverage)) + 1e-9;
    }),
  }));

  const rounded = (x: number) => Number(x.toPrecision(6));
  const fits = emptyMetrics((metric) => {
    const fit = fitCoefficients(observations, metric, CORRECTED_FEATURES[metric]);
    return {
      ...(fit.ceiling
        ? {
            ceiling: {
              ms: rounded(fit.ceiling.ms),
              coefficients: fit.ceiling.coefficients.map(rounded),
            },
          }
        : {}),
      coefficients: fit.coefficients.map(rounded),
      // Widened by the rounding so that no fitted run is clamped.
      featureRanges: fit.featureRanges.map(([lo, hi]): [number, number] => [
        Math.floor(lo * 1e4) / 1e4,
        Math.ceil(hi * 1e4) / 1e4,
      ]),
    };
  });
  const modelOf = (profile: string): LatencyModel => {
    const ofProfile = (o: LatencyObservation) => o.profile === profile;
    const metrics = emptyMetrics((metric): MetricModel => {
      const halfWidth = (idx: number[], regime: string) => {
        const w = conformalHalfWidth(
          idx.map((i) => residual(i, metric)),
          meta.coverage,
        );
        if (!Number.isFinite(w))
          throw new Error(
            `too few ${regime} runs of ${profile}, or of every profile, to bound ${metric} at ${meta.coverage} coverage`,
          );
        return Number(w.toFixed(5));
      };
      const upper = (idx: number[]) =>
        Number(
          conformalUpper(
            idx.map((i) => signed(i, metric)),
            meta.coverage,
          ).toFixed(5),
        );
      const halfWidthLog: PerRegime = { keepsUp: 0, saturated: 0 };
      const sloQuantileLog: PerRegime = { keepsUp: 0, saturated: 0 };
      for (const regime of ['keepsUp', 'saturated'] as const) {
        const own = usableIdx(metric, (o) => ofProfile(o) && coarse(o) === regime);
        // Too few of this profile's own runs for a bound (a fit without the lightest workloads
        // keeps few servers that keep up): both profiles' runs of the regime, as the correction
        // itself is pooled over them.
        const idx = enough(own.length) ? own : usableIdx(metric, (o) => coarse(o) === regime);
        halfWidthLog[regime] = halfWidth(idx, regime);
        sloQuantileLog[regime] = upper(idx);
      }
      if (QUEUE_SPLIT_METRICS.includes(metric))
        for (const regime of QUEUE_REGIMES) {
          const idx = usableIdx(metric, (o) => ofProfile(o) && split(o) === regime);
          if (!enough(idx.length)) continue; // the coarse regime's value applies
          halfWidthLog[regime] = halfWidth(idx, regime);
          sloQuantileLog[regime] = upper(idx);
        }
      // Where the twin keeps up, per side of the median prediction (both sides a finite bound).
      const byLevel = (): MetricModel['levelSplit'] => {
        const keepsUp = usableIdx(metric, (o) => ofProfile(o) && coarse(o) === 'keepsUp');
        const levelMs = median(keepsUp.map((i) => predicted[i]![metric]));
        const below = keepsUp.filter((i) => predicted[i]![metric] < levelMs);
        const above = keepsUp.filter((i) => predicted[i]![metric] >= levelMs);
        if (!enough(below.length) || !enough(above.length)) return undefined;
        return {
          ms: rounded(levelMs),
          halfWidthLog: {
            below: halfWidth(below, 'keepsUp below the median'),
            above: halfWidth(above, 'keepsUp above the median'),
          },
          sloQuantileLog: { below: upper(below), above: upper(above) },
        };
      };
      const levelSplit = LEVEL_SPLIT_METRICS.includes(metric) ? byLevel() : undefined;
      return {
        features: [...CORRECTED_FEATURES[metric]],
        ...fits[metric],
        halfWidthLog,
        sloQuantileLog,
        ...(levelSplit ? { levelSplit } : {}),
      };
    });
    return {
      profile,
      ...meta,
      // What the correction was fitted on (every profile); the intervals use this profile's runs.
      runs: observations.length,
      workloads: workloads.length,
      envelope: latencyEnvelopeOf(observations.filter(ofProfile).map((o) => o.measured)),
      metrics,
    };
  };
  const profiles = [...new Set(observations.map((o) => o.profile))];
  return {
    models: Object.fromEntries(profiles.map((p) => [p, modelOf(p)])),
    outOfFold,
  };
}
