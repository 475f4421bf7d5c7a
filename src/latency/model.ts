import { z } from 'zod';
import { DEFAULT_STARVATION_THRESHOLD, KEEPS_UP_RATIO } from '../twin/index.js';
import { outsideFeatureSchema, type OutsideFeature } from '../envelope/index.js';
import { latencyEnvelopeSchema, outsideLatencyEnvelope, type LatencyCase } from './envelope.js';
import {
  envelopeDistance,
  extrapolationSchema,
  growthIn,
  widened,
  type Growth,
} from './extrapolation.js';

/**
 * Latency the client sees, from the twin's simulated latency. The twin models what happens inside
 * the engine (prefill chunks sharing a step with decodes, adapter loads stalling a step, recompute
 * after preemption, requests skipped for want of a slot, scheduler time growing with the queue).
 * What it does not see is a log-linear correction fitted on real runs (src/latency/fit.ts): the
 * API server streaming hundreds of requests' tokens from one Python process, the step cost of
 * --max-lora-rank, first tokens that wait longer the more adapters a server holds, and a backlog
 * the twin over-counts near saturation. Every figure carries a split-conformal interval whose
 * coverage is measured leave-one-workload-out.
 */
export const LATENCY_METRICS = ['ttftP50', 'ttftP99', 'itlP50', 'itlP99'] as const;
export type LatencyMetric = (typeof LATENCY_METRICS)[number];

/** Names of the correction's features, in order; each is computed from one simulation. */
export const LATENCY_FEATURES = [
  'intercept',
  'logMaxLoras',
  'logTwinMeanItlMs',
  'logTwinItlTail',
  'logAdaptersPerSlot',
  'twinQueueBounded',
  'twinQueueGrows',
  'logAdaptersOver16IfBounded',
  'logShortfallIfGrows',
  'logMaxLoraRank',
  'logMaxLoraRankIfKeepsUpQueued',
] as const;
export type LatencyFeature = (typeof LATENCY_FEATURES)[number];

/** What the correction reads from one simulated pair. */
export interface TwinLatency {
  maxLoras: number;
  maxCpuLoras: number;
  maxLoraRank: number;
  meanRunningRequests: number;
  /** Twin's tokens served over tokens offered: above KEEPS_UP_RATIO the queue does not grow. */
  completionRatio: number;
  /** The twin's TTFT; where it depends on the arrivals, the median over several realisations. */
  ttftMs: { p50: number; p99: number };
  itlMs: { mean: number; p50: number; p99: number };
  /** Arrival realisations behind ttftMs (1 when omitted). */
  ttftRealisations?: number;
  /** The lowest and highest p99 TTFT over those realisations, where there were several. */
  ttftP99Spread?: { low: number; high: number };
}

// The regime boundary of the correction and its intervals is the twin's definition of keeping up.
export { KEEPS_UP_RATIO };

/**
 * Past this p99 TTFT the twin's slowest requests waited behind a queue of other requests rather
 * than a few busy steps: TTFT is then set by the backlog, not by the batch, and the real server's
 * figure relates to the twin's differently (docs/latency.md).
 */
export const QUEUEING_TTFT_MS = 2000;

/** Up to this many adapters the real p99 TTFT without a queue is the twin's (measured 8 and 16). */
const ADAPTERS_BEFORE_TTFT_GROWTH = 16;

/**
 * The geometric middle of the measured --max-lora-rank values (16 and 32). The clamp to the fitted
 * range then reads a rank below 16 as 16 and above 32 as 32: never a promise past the data.
 */
const MEASURED_RANK_CENTRE = Math.sqrt(16 * 32);

/** The floor of the share of load left behind in logShortfallIfGrows. */
const MIN_SHORTFALL = 0.002;

/**
 * How sharply a corrected figure bends under its ceiling: value / (1 + (value / ceiling)^k)^(1/k).
 * 1, 2, 4 and 8 gave p99 ITL errors within 1.4 points of each other out of fold; 2 is kept.
 */
export const CEILING_SHARPNESS = 2;

/**
 * The ceiling holds where the twin serves its load (completes at least 90%: every pair the paper's
 * rule can recommend). Over the 131 measured runs where it does, the real p99 ITL never passed
 * 889 ms; it passes 1 s only on servers the twin puts under 80%, deep in saturation, where
 * recompute after preemption takes over the tail (docs/latency.md).
 */
export const CEILING_MIN_COMPLETION = 1 - DEFAULT_STARVATION_THRESHOLD;

/** A soft minimum of a figure and its ceiling, in log units (stable for any magnitude). */
export function underCeilingLog(logValue: number, logCeiling: number): number {
  const over = CEILING_SHARPNESS * (logValue - logCeiling);
  const softplus = over > 30 ? over : Math.log1p(Math.exp(over));
  return logValue - softplus / CEILING_SHARPNESS;
}

/**
 * Intervals are sized per regime of the twin: it keeps up (completes at least KEEPS_UP_RATIO of
 * its load) or it is saturated. TTFT is also split by its queue (p99 TTFT under QUEUEING_TTFT_MS
 * or not), the two laws of its correction: out of fold, one interval over both queues covered
 * 84.5% of Qwen's runs that keep up, and the one-sided bound held for 85.5% / 84.5% (Llama /
 * Qwen); split, 93.1% and 96.4% / 94.8% (docs/latency.md).
 */
export const QUEUE_SPLIT_METRICS: readonly LatencyMetric[] = ['ttftP50', 'ttftP99'];

export type LatencyRegime = 'keepsUp' | 'saturated';
export const QUEUE_REGIMES = [
  'keepsUpBounded',
  'keepsUpQueued',
  'saturatedBounded',
  'saturatedQueued',
] as const;
export type QueueRegime = (typeof QUEUE_REGIMES)[number];

/**
 * Where a server keeps up but its queue comes and goes, one hour of arrivals decides the p99 TTFT:
 * the twin's p99 TTFT of Llama's high-rate 32 x 32 pair ranged from 0.34 to 8.3 s over eight
 * arrival seeds (the real run measured 1.2 s), while pairs with a bounded queue or a queue that
 * grows all hour moved by a third at most. There the twin's TTFT is read as the median over this
 * many realisations (docs/latency.md: 3, 5 and 9 gave p99 TTFT errors within 1.8 points).
 */
export const TTFT_ARRIVAL_REALISATIONS = 5;

/** Whether one realisation's TTFT is a lottery: the twin keeps up but its queue is not bounded. */
export function ttftDependsOnArrivals(t: Pick<TwinLatency, 'completionRatio' | 'ttftMs'>): boolean {
  return regimeOf(t) === 'keepsUpQueued';
}

/**
 * Metrics whose intervals, where the twin keeps up, are sized per half of the fitting runs split
 * at their median prediction. p99 ITL's errors grow with the tail: the part of it no engine step
 * makes (the API server falling behind the streams, docs/latency.md) grows with the load. One
 * pooled quantile let Qwen's under-predicted 300-430 ms pairs set the bound of its 60 ms ones
 * (x1.44 where their own errors call for x1.15).
 */
export const LEVEL_SPLIT_METRICS: readonly LatencyMetric[] = ['itlP99'];

/** The coarse regime a split one refines. */
export const coarseOf = (split: QueueRegime): LatencyRegime =>
  split.startsWith('keepsUp') ? 'keepsUp' : 'saturated';

/** The split regime an interval for this simulated pair is read from (coarseOf: its fallback). */
export function regimeOf(t: Pick<TwinLatency, 'completionRatio' | 'ttftMs'>): QueueRegime {
  const coarse = t.completionRatio >= KEEPS_UP_RATIO ? 'keepsUp' : 'saturated';
  return `${coarse}${t.ttftMs.p99 < QUEUEING_TTFT_MS ? 'Bounded' : 'Queued'}`;
}

/**
 * One value per regime: the coarse two always; a split regime only for QUEUE_SPLIT_METRICS and
 * only where its runs are enough for a finite bound (else the coarse regime's value applies).
 */
const perRegimeSchema = z.object({
  keepsUp: z.number(),
  saturated: z.number(),
  keepsUpBounded: z.number().optional(),
  keepsUpQueued: z.number().optional(),
  saturatedBounded: z.number().optional(),
  saturatedQueued: z.number().optional(),
});
export type PerRegime = z.infer<typeof perRegimeSchema>;

/** The value of a regime table for a pair: its split regime where the metric has one, else coarse. */
export function regimeValue(table: PerRegime, metric: LatencyMetric, regime: QueueRegime): number {
  const split = QUEUE_SPLIT_METRICS.includes(metric) ? table[regime] : undefined;
  return split ?? table[coarseOf(regime)];
}

const metricModelSchema = z
  .object({
    /** Features used, a prefix-free subset of LATENCY_FEATURES; empty = the twin's figure as is. */
    features: z.array(z.enum(LATENCY_FEATURES)),
    coefficients: z.array(z.number()),
    /**
     * Per feature, the [min, max] it took on the runs the correction was fitted on. Features are
     * clamped to it: the correction never extrapolates past what was measured (a line through
     * 8-384 slots says nothing true about 1).
     */
    featureRanges: z.array(z.tuple([z.number(), z.number()])),
    /**
     * Where the twin serves its load (CEILING_MIN_COMPLETION), the correction bends under a level:
     * the real p99 ITL of servers that keep up levels off at 0.7-0.9 s once 128 or more slots
     * serve 192 or more adapters, for both models, where a log-linear correction keeps growing
     * (docs/latency.md). Its coefficients (same features and ranges) are fitted together with
     * the level, and replace `coefficients` there; deeper in saturation, where the real p99 ITL
     * reaches 4 s, the log-linear correction applies. Absent: no ceiling.
     */
    ceiling: z.object({ ms: z.number().positive(), coefficients: z.array(z.number()) }).optional(),
    /**
     * Half-widths of the interval in natural-log units, per regime: the conformal quantile of
     * |ln(real / predicted)| over out-of-fold residuals at the model's coverage.
     */
    halfWidthLog: perRegimeSchema,
    /**
     * One-sided: the conformal quantile of the signed ln(real / predicted) at the model's coverage.
     * The real figure stays under prediction x e^this in that share of cases: an SLO's test.
     */
    sloQuantileLog: perRegimeSchema,
    /**
     * LEVEL_SPLIT_METRICS only: where the twin keeps up, the two widths above replaced by those of
     * the fitting runs predicted below or at-or-above `ms` (their median prediction).
     */
    levelSplit: z
      .object({
        ms: z.number().positive(),
        halfWidthLog: z.object({ below: z.number(), above: z.number() }),
        sloQuantileLog: z.object({ below: z.number(), above: z.number() }),
      })
      .optional(),
    /**
     * How the interval and bound grow outside the envelope, per unit of envelopeDistance (ln of
     * how far the furthest feature lies beyond its measured range). Absent: they do not grow.
     */
    extrapolation: extrapolationSchema.optional(),
  })
  // A file whose arrays do not line up with its features would correct by NaN: refused on load.
  .refine(
    (m) =>
      m.coefficients.length === m.features.length &&
      m.featureRanges.length === m.features.length &&
      (m.ceiling === undefined || m.ceiling.coefficients.length === m.features.length),
    { message: 'coefficients, feature ranges and ceiling coefficients must match the features' },
  );

export const latencyModelSchema = z.object({
  profile: z.string(),
  twinVersion: z.string(),
  /** Target coverage of every interval. */
  coverage: z.number().gt(0).lt(1),
  source: z.string(),
  runs: z.number().int(),
  workloads: z.number().int(),
  /** What this profile's intervals were measured on: outside it their coverage is unknown. */
  envelope: latencyEnvelopeSchema,
  metrics: z.object({
    ttftP50: metricModelSchema,
    ttftP99: metricModelSchema,
    itlP50: metricModelSchema,
    itlP99: metricModelSchema,
  }),
});
export type LatencyModel = z.infer<typeof latencyModelSchema>;
export type MetricModel = z.infer<typeof metricModelSchema>;

export const latencyEstimateSchema = z.object({
  ms: z.number().meta({ description: 'Predicted value' }),
  lowMs: z.number().meta({ description: 'Lower end of the interval' }),
  highMs: z.number().meta({ description: 'Upper end of the interval' }),
  sloMs: z.number().meta({
    description:
      'One-sided bound: the real figure stays under it in `coverage` of cases (measured leave-one-workload-out). What an SLO is checked against',
  }),
});
export type LatencyEstimate = z.infer<typeof latencyEstimateSchema>;

export const latencyPredictionSchema = z.object({
  ttftMs: z.object({ p50: latencyEstimateSchema, p99: latencyEstimateSchema }),
  itlMs: z.object({ p50: latencyEstimateSchema, p99: latencyEstimateSchema }),
  coverage: z.number().meta({
    description:
      'Target coverage of the intervals (their coverage measured leave-one-workload-out on real runs is in docs/validation/twin.md)',
  }),
  calibrated: z.boolean().meta({
    description:
      "False when the profile has no latency model: the twin's figures are returned with zero-width intervals",
  }),
  ttftArrivalRealisations: z.number().int().positive().meta({
    description:
      'Arrival realisations the TTFT figures are read over: 1, or the median of 5 where the twin keeps up but its queue comes and goes, so one hour of arrivals decides the p99 (docs/latency.md)',
  }),
  envelope: z.enum(['inside', 'outside']).optional().meta({
    description:
      "Whether this pair and workload lie inside what the intervals' coverage was measured on (the real runs' rates, ranks, pairs, batch flags, window and request lengths; absent without a latency model). Outside, the figures are still the corrected twin's, but how often the real p99 stays under the bound is unmeasured.",
  }),
  outsideEnvelope: z.array(outsideFeatureSchema).optional().meta({
    description: 'What lies outside the measured ranges, with those ranges',
  }),
  envelopeDistance: z.number().optional().meta({
    description:
      'How far outside: ln(value / nearest measured end) of the furthest feature (0.69 = twice the largest measured). Intervals and bounds widen with it, by the growth validate:twin measured on whole regimes held out of the fit',
  }),
});
export type LatencyPrediction = z.infer<typeof latencyPredictionSchema>;

export function latencyFeatures(t: TwinLatency): Record<LatencyFeature, number> {
  const bounded = t.ttftMs.p99 < QUEUEING_TTFT_MS;
  return {
    intercept: 1,
    logMaxLoras: Math.log(Math.max(1, t.maxLoras)),
    logTwinMeanItlMs: Math.log(Math.max(1e-3, t.itlMs.mean)),
    // The twin's own tail: how far its slowest steps (prefill chunks, loads) stand out.
    logTwinItlTail: Math.log(Math.max(1e-3, t.itlMs.p99) / Math.max(1e-3, t.itlMs.mean)),
    // How often adapters must be swapped into a slot: the adapter-load stalls.
    logAdaptersPerSlot: Math.log(Math.max(1, t.maxCpuLoras) / Math.max(1, t.maxLoras)),
    // The regime of the twin's queue: TTFT of a few steps, or of a backlog.
    twinQueueBounded: bounded ? 1 : 0,
    twinQueueGrows: bounded ? 0 : 1,
    // Without a queue, the real p99 TTFT is the twin's up to 16 adapters and then grows with the
    // adapters served where the twin's stays flat (2x at 32, 4-5x at 128: docs/latency.md). A
    // hinge, not a line through ln(adapters): fewer adapters must not promise less than the twin.
    logAdaptersOver16IfBounded: bounded
      ? Math.log(Math.max(ADAPTERS_BEFORE_TTFT_GROWTH, t.maxCpuLoras) / ADAPTERS_BEFORE_TTFT_GROWTH)
      : 0,
    // With a growing queue, TTFT is the backlog's, and the backlog is the share of the load left
    // behind (floored: a queue that grows while nearly everything completes is a transient one).
    logShortfallIfGrows: bounded
      ? 0
      : Math.log(Math.max(MIN_SHORTFALL, 1 - Math.min(1, t.completionRatio))),
    // vLLM's LoRA kernels pad every slot to --max-lora-rank, a step cost the twin's LoRA terms do
    // not separate (they were fitted across ranks): the same pair decodes slower at rank 32.
    logMaxLoraRank: Math.log(Math.max(1, t.maxLoraRank)),
    // That step cost behind a queue that comes and goes: slower steps drain each burst more
    // slowly, so the same pair waits longer at rank 32 than at 16. Not where the twin falls
    // behind: there the backlog is the hour's shortfall, whose rank cost the twin's throughput
    // already carries (applied there, the term cut Llama's all-run coverage from 92% to 76%).
    // Centred on the measured ranks, so the saturated regime's correction keeps its level.
    logMaxLoraRankIfKeepsUpQueued:
      regimeOf(t) === 'keepsUpQueued'
        ? Math.log(Math.max(1, t.maxLoraRank) / MEASURED_RANK_CENTRE)
        : 0,
  };
}

export function twinValue(t: TwinLatency, metric: LatencyMetric): number {
  switch (metric) {
    case 'ttftP50':
      return t.ttftMs.p50;
    case 'ttftP99':
      return t.ttftMs.p99;
    case 'itlP50':
      return t.itlMs.p50;
    case 'itlP99':
      return t.itlMs.p99;
  }
}

/**
 * The corrected point predictions of the four metrics, from one computation of the features. A
 * p99 is never predicted under its own p50: the two are corrected separately.
 */
export function pointPredictions(
  metrics: Record<LatencyMetric, MetricModel>,
  t: TwinLatency,
): Record<LatencyMetric, number> {
  const x = latencyFeatures(t);
  const serves = t.completionRatio >= CEILING_MIN_COMPLETION;
  const one = (metric: LatencyMetric): number => {
    const m = metrics[metric];
    const ceiling = serves ? m.ceiling : undefined;
    const coefficients = ceiling?.coefficients ?? m.coefficients;
    const logFactor = m.features.reduce((s, f, i) => {
      const [min, max] = m.featureRanges[i]!;
      return s + Math.min(max, Math.max(min, x[f])) * coefficients[i]!;
    }, 0);
    const corrected = twinValue(t, metric) * Math.exp(logFactor);
    if (!ceiling || !(corrected > 0)) return corrected;
    return Math.exp(underCeilingLog(Math.log(corrected), Math.log(ceiling.ms)));
  };
  const ttftP50 = one('ttftP50');
  const itlP50 = one('itlP50');
  return {
    ttftP50,
    ttftP99: Math.max(ttftP50, one('ttftP99')),
    itlP50,
    itlP99: Math.max(itlP50, one('itlP99')),
  };
}

/** The interval's widths for a pair predicted at `ms` in `regime`: its level's, else its regime's. */
export function widthsFor(
  m: MetricModel,
  metric: LatencyMetric,
  regime: QueueRegime,
  ms: number,
): { halfWidthLog: number; sloQuantileLog: number } {
  if (m.levelSplit && coarseOf(regime) === 'keepsUp') {
    const side = ms < m.levelSplit.ms ? 'below' : 'above';
    return {
      halfWidthLog: m.levelSplit.halfWidthLog[side],
      sloQuantileLog: m.levelSplit.sloQuantileLog[side],
    };
  }
  return {
    halfWidthLog: regimeValue(m.halfWidthLog, metric, regime),
    sloQuantileLog: regimeValue(m.sloQuantileLog, metric, regime),
  };
}

const estimate = (ms: number, halfWidthLog: number, sloQuantileLog: number): LatencyEstimate => ({
  ms,
  lowMs: ms * Math.exp(-halfWidthLog),
  highMs: ms * Math.exp(halfWidthLog),
  // Never below the prediction itself: a bound that promises better than the estimate is none.
  sloMs: ms * Math.exp(Math.max(0, sloQuantileLog)),
});

/**
 * p50 and p99 TTFT and ITL with intervals; the twin's figures as is without a model. Given the
 * simulated case, the prediction also says whether it lies inside the model's measured envelope.
 */
export function predictLatency(
  model: LatencyModel | undefined,
  t: TwinLatency,
  simulated?: LatencyCase,
): LatencyPrediction {
  const point = model ? pointPredictions(model.metrics, t) : undefined;
  const regime = regimeOf(t);
  const distance = model && simulated ? envelopeDistance(model.envelope, simulated).distance : 0;
  const one = (metric: LatencyMetric): LatencyEstimate => {
    const m = model?.metrics[metric];
    const w = m && point ? widthsFor(m, metric, regime, point[metric]) : undefined;
    const e =
      w && point
        ? estimate(point[metric], w.halfWidthLog, w.sloQuantileLog)
        : estimate(twinValue(t, metric), 0, 0);
    // Outside (distance > 0 needs a model), the widening starts from the interval the
    // realisations' spread already widened: the model's error beyond the measured runs adds to
    // the hour's own.
    const spread = metric === 'ttftP99' ? withRealisationSpread(e, t) : e;
    return widenedEstimate(spread, distance, growthIn(m?.extrapolation, coarseOf(regime)));
  };
  return {
    ttftMs: { p50: one('ttftP50'), p99: one('ttftP99') },
    itlMs: { p50: one('itlP50'), p99: one('itlP99') },
    coverage: model?.coverage ?? 0,
    calibrated: model !== undefined,
    ttftArrivalRealisations: t.ttftRealisations ?? 1,
    ...(model && simulated
      ? {
          ...envelopeFields(outsideLatencyEnvelope(model.envelope, simulated)),
          ...(distance > 0 ? { envelopeDistance: distance } : {}),
        }
      : {}),
  };
}

/** An estimate widened at a distance outside the envelope, each side of its interval on its own. */
function widenedEstimate(
  e: LatencyEstimate,
  distance: number,
  growth: Growth | undefined,
): LatencyEstimate {
  if (!(distance > 0) || !(e.ms > 0)) return e;
  const high = Math.log(e.highMs / e.ms);
  const low = Math.log(e.ms / e.lowMs);
  const w = widened(
    { halfWidthLog: high, sloQuantileLog: Math.log(e.sloMs / e.ms) },
    distance,
    growth,
  );
  const grown = w.halfWidthLog - high;
  return {
    ms: e.ms,
    lowMs: e.ms * Math.exp(-(low + grown)),
    highMs: e.ms * Math.exp(w.halfWidthLog),
    sloMs: e.ms * Math.exp(w.sloQuantileLog),
  };
}

/**
 * Where the queue comes and goes, the hour's bursts decide the p99 TTFT: its spread across arrival
 * realisations is part of the prediction. The interval spans at least the realisations' lowest
 * and highest p99 (scaled as the median was corrected), and the SLO bound is at least the highest.
 */
function withRealisationSpread(e: LatencyEstimate, t: TwinLatency): LatencyEstimate {
  const spread = t.ttftP99Spread;
  if (!spread || !(t.ttftMs.p99 > 0)) return e;
  const scale = e.ms / t.ttftMs.p99;
  return {
    ms: e.ms,
    lowMs: Math.min(e.lowMs, spread.low * scale),
    highMs: Math.max(e.highMs, spread.high * scale),
    sloMs: Math.max(e.sloMs, spread.high * scale),
  };
}

const envelopeFields = (
  outside: OutsideFeature[],
): Pick<LatencyPrediction, 'envelope' | 'outsideEnvelope'> =>
  outside.length ? { envelope: 'outside', outsideEnvelope: outside } : { envelope: 'inside' };
