// Latency figures of validate:twin: p50 and p99 TTFT and ITL, the twin as is and corrected
// leave-one-workload-out, with the coverage of the intervals.
import {
  QUEUE_REGIMES,
  QUEUE_SPLIT_METRICS,
  coarseOf,
  regimeValue,
  CEILING_MIN_COMPLETION,
  CEILING_SHARPNESS,
  fitLatencyModel,
  LATENCY_METRICS,
  QUEUEING_TTFT_MS,
  twinValue,
  type LatencyFit,
  type LatencyMetric,
  type LatencyObservation,
  type OutOfFold,
  type TwinLatency,
} from '../latency/index.js';
import { KEEPS_UP_RATIO, TWIN_VERSION } from '../twin/index.js';
import { errorSummary, median, pct } from './metrics.js';
import type { RunComparison } from './comparison.js';

/** The measurements' GPU: every measured model's profile lives under it. */
export const profileOf = (model: string) => `h100-64gb/${model}`;

/** Target coverage of the intervals. */
export const LATENCY_COVERAGE = 0.9;

/** What the latency model reads of the twin's simulation of a measured run. */
export const twinLatencyOfRun = (r: RunComparison): TwinLatency => ({
  maxLoras: r.maxLoras,
  maxCpuLoras: r.maxCpuLoras,
  maxLoraRank: r.maxLoraRank,
  meanRunningRequests: r.twinMeanRunningRequests,
  completionRatio: r.twinCompletionRatio,
  ttftMs: { p50: r.twinTtftP50Ms, p99: r.twinTtftP99Ms },
  itlMs: { mean: r.twinItlMs, p50: r.twinItlP50Ms, p99: r.twinItlP99Ms },
});

export function latencyObservations(runs: readonly RunComparison[]): LatencyObservation[] {
  return runs
    .filter((r) => r.realOk && r.twinFeasible)
    .map((r) => ({
      // Workloads of different models are different workloads: held out one at a time.
      workload: `${r.model}/${r.workload}`,
      profile: profileOf(r.model),
      twin: twinLatencyOfRun(r),
      real: {
        ttftP50: r.realTtftP50Ms,
        ttftP99: r.realTtftP99Ms,
        itlP50: r.realItlP50Ms,
        itlP99: r.realItlP99Ms,
      },
      measured: {
        rates: r.adapterRates.split(' ').map(Number),
        ranks: r.adapterRanks.split(' ').map(Number),
        lengths: r.requestLengths,
        maxLoras: r.maxLoras,
        maxCpuLoras: r.maxCpuLoras,
        maxLoraRank: r.maxLoraRank,
        maxNumBatchedTokens: r.maxNumBatchedTokens,
        maxNumSeqs: r.maxNumSeqs,
        durationSeconds: r.durationSeconds,
      },
    }));
}

/**
 * One correction for every model of the GPU: what it corrects (the API server streaming tokens,
 * adapter swaps) is vLLM's code, not the model's weights, and pooling gives the fit eight workloads
 * to hold out instead of four.
 */
export function fitPooled(runs: readonly RunComparison[], source: string) {
  return fitLatencyModel(latencyObservations(runs), {
    twinVersion: TWIN_VERSION,
    source,
    coverage: LATENCY_COVERAGE,
  });
}

const REGIME_LABEL = {
  keepsUp: 'keeps up',
  saturated: 'saturated',
  keepsUpBounded: 'keeps up, queue bounded',
  keepsUpQueued: 'keeps up, queued',
  saturatedBounded: 'saturated, queue bounded',
  saturatedQueued: 'saturated, queued',
} as const;

export const SUBSETS = {
  all: { label: 'all runs', test: () => true },
  keepsUp: {
    label: 'runs that keep up (real throughput ≥ 95% of offered)',
    test: (o: LatencyObservation & { realRatio: number }) => o.realRatio >= KEEPS_UP_RATIO,
  },
  sloRange: {
    label: 'runs with real p99 TTFT under 10 s',
    test: (o: LatencyObservation) => o.real.ttftP99 < 10_000,
  },
  // A diagnostic, not a target: near saturation a few percent of throughput decide whether a
  // queue grows for the hour, and where the twin and the server disagree on that, TTFT is off by
  // orders of magnitude. This subset shows the error where they agree.
  keepsUpQueueAgrees: {
    label: `runs that keep up where the twin and the real server agree on the queue (p99 TTFT both under or both over ${QUEUEING_TTFT_MS / 1000} s)`,
    test: (o: LatencyObservation & { realRatio: number }) =>
      o.realRatio >= KEEPS_UP_RATIO &&
      o.real.ttftP99 < QUEUEING_TTFT_MS === o.twin.ttftMs.p99 < QUEUEING_TTFT_MS,
  },
} as const;
export type Subset = keyof typeof SUBSETS;

export interface MetricFigures {
  n: number;
  twinMape: number;
  twinMedianRatio: number;
  twinBias: number;
  mape: number;
  medianRatio: number;
  bias: number;
  coverage: number;
  /** Share of runs under the one-sided SLO bound built without their workload. */
  sloCoverage: number;
  /** Runs whose real figure is under 1 ms, where a percentage error says little. */
  realUnder1Ms: number;
}

const twinOf = (o: LatencyObservation, m: LatencyMetric) => twinValue(o.twin, m);

/** The out-of-fold rows of one subset. */
function rowsIn<R extends OutOfFold & { realRatio: number }>(
  rows: ReadonlyArray<R>,
  subset: Subset,
): R[] {
  const test = SUBSETS[subset].test as (o: LatencyObservation & { realRatio: number }) => boolean;
  return rows.filter((r) => test({ ...r.observation, realRatio: r.realRatio }));
}

export function latencyFigures(
  rows: ReadonlyArray<OutOfFold & { realRatio: number }>,
): Record<Subset, Record<LatencyMetric, MetricFigures>> {
  const out = {} as Record<Subset, Record<LatencyMetric, MetricFigures>>;
  for (const subset of Object.keys(SUBSETS) as Subset[]) {
    const inSubset = rowsIn(rows, subset);
    out[subset] = {} as Record<LatencyMetric, MetricFigures>;
    for (const m of LATENCY_METRICS) {
      const usable = inSubset.filter(
        (r) => r.observation.real[m] > 0 && twinOf(r.observation, m) > 0,
      );
      const twin = errorSummary(
        usable.map((r) => ({ real: r.observation.real[m], predicted: twinOf(r.observation, m) })),
      );
      const corrected = errorSummary(
        usable.map((r) => ({ real: r.observation.real[m], predicted: r.predicted[m] })),
      );
      out[subset][m] = {
        n: usable.length,
        twinMape: twin.mape,
        twinMedianRatio: median(
          usable.map((r) => twinOf(r.observation, m) / r.observation.real[m]),
        ),
        twinBias: twin.bias,
        mape: corrected.mape,
        medianRatio: median(usable.map((r) => r.predicted[m] / r.observation.real[m])),
        bias: corrected.bias,
        coverage: usable.filter((r) => r.covered[m]).length / Math.max(1, usable.length),
        sloCoverage: usable.filter((r) => r.underSloBound[m]).length / Math.max(1, usable.length),
        realUnder1Ms: usable.filter((r) => r.observation.real[m] < 1).length,
      };
    }
  }
  return out;
}

/**
 * Per subset, the share of runs under both one-sided p99 bounds at once: what an SLO that sets
 * both a TTFT and an ITL limit can promise (each bound alone holds in about 90% of runs; both
 * together in fewer).
 */
export function jointSloCoverage(
  rows: ReadonlyArray<OutOfFold & { realRatio: number }>,
): Record<Subset, { n: number; share: number }> {
  const out = {} as Record<Subset, { n: number; share: number }>;
  for (const subset of Object.keys(SUBSETS) as Subset[]) {
    const usable = rowsIn(rows, subset).filter((r) =>
      (['ttftP99', 'itlP99'] as const).every(
        (m) => r.observation.real[m] > 0 && twinOf(r.observation, m) > 0,
      ),
    );
    const both = usable.filter((r) => r.underSloBound.ttftP99 && r.underSloBound.itlP99).length;
    out[subset] = { n: usable.length, share: both / Math.max(1, usable.length) };
  }
  return out;
}

const METRIC_LABEL: Record<LatencyMetric, string> = {
  ttftP50: 'p50 TTFT',
  ttftP99: 'p99 TTFT',
  itlP50: 'p50 ITL',
  itlP99: 'p99 ITL',
};

/** The markdown section: one table per subset, models side by side. */
export function latencySection(
  perModel: Array<{
    model: string;
    figures: ReturnType<typeof latencyFigures>;
    joint: ReturnType<typeof jointSloCoverage>;
  }>,
  fit: LatencyFit,
): string {
  const parts: string[] = [];
  for (const subset of Object.keys(SUBSETS) as Subset[]) {
    const head =
      `| metric | ${perModel.map((p) => `${p.model}: n · twin MAPE / median ratio / bias · corrected (out of fold) MAPE / median ratio / bias · interval coverage · under the 90% SLO bound`).join(' | ')} |\n` +
      `|---|${perModel.map(() => '---').join('|')}|`;
    const lines = LATENCY_METRICS.map((m) => {
      const cells = perModel.map(({ figures }) => {
        const f = figures[subset][m];
        const corrected =
          f.mape === f.twinMape && f.medianRatio === f.twinMedianRatio
            ? 'as twin'
            : `${pct(f.mape)} / ${f.medianRatio.toFixed(2)} / ${pct(f.bias)}`;
        return `${f.n} · ${pct(f.twinMape)} / ${f.twinMedianRatio.toFixed(2)} / ${pct(f.twinBias)} · ${corrected} · ${pct(100 * f.coverage)} · ${pct(100 * f.sloCoverage)}`;
      });
      return `| ${METRIC_LABEL[m]} | ${cells.join(' | ')} |`;
    });
    // A run so far behind that the client receives its tokens in bursts measures most gaps as
    // 0.01 ms: its median ITL is not a step time, and its percentage error swamps the MAPE.
    const nearZero = perModel.map(({ figures }) => figures[subset].itlP50.realUnder1Ms);
    const note = nearZero.some((n) => n > 0)
      ? `\n\np50 ITL: ${nearZero.join(' / ')} of these runs (${perModel.map((p) => p.model).join(' / ')}) have a real median ITL under 1 ms (0.01 ms): runs so far behind that the client receives tokens in bursts, so most measured gaps are zero. Their percentage errors swamp this row's MAPE and bias.`
      : '';
    const joint = `\n\nBoth p99 bounds at once (an SLO with a TTFT and an ITL limit): ${perModel.map(({ model, joint }) => `${model} ${pct(100 * joint[subset].share)} of ${joint[subset].n}`).join(', ')}.`;
    parts.push(`### ${SUBSETS[subset].label}\n${head}\n${lines.join('\n')}${note}${joint}`);
  }
  const profiles = Object.keys(fit.models);
  const first = fit.models[profiles[0]!]!;
  const bound = (q: number) => Math.exp(Math.max(0, q)).toFixed(2);
  const coefficients = LATENCY_METRICS.map((m) => {
    const mm = first.metrics[m];
    const sum = (c: readonly number[]) =>
      mm.features.map((f, i) => `${c[i]!.toFixed(3)}·${f}`).join(' + ');
    const factor =
      mm.features.length === 0
        ? 'none (twin as is)'
        : mm.ceiling
          ? `where the twin completes ≥ ${100 * CEILING_MIN_COMPLETION}%: ${sum(mm.ceiling.coefficients)}, under a ceiling of ${Math.round(mm.ceiling.ms)} ms (sharpness ${CEILING_SHARPNESS}); below: ${sum(mm.coefficients)}`
          : sum(mm.coefficients);
    const intervals = profiles.map((p) => {
      const pm = fit.models[p]!.metrics[m];
      const cell = (label: string, half: number, upper: number) =>
        `${label} ×/÷ ${Math.exp(half).toFixed(2)}, SLO bound × ${bound(upper)}`;
      const level = pm.levelSplit;
      if (level)
        return [
          cell(
            `${REGIME_LABEL.keepsUp}, predicted under ${Math.round(level.ms)} ms`,
            level.halfWidthLog.below,
            level.sloQuantileLog.below,
          ),
          cell(
            `${REGIME_LABEL.keepsUp}, predicted at ${Math.round(level.ms)} ms or more`,
            level.halfWidthLog.above,
            level.sloQuantileLog.above,
          ),
          cell(REGIME_LABEL.saturated, pm.halfWidthLog.saturated, pm.sloQuantileLog.saturated),
        ].join(' · ');
      if (!QUEUE_SPLIT_METRICS.includes(m))
        return (['keepsUp', 'saturated'] as const)
          .map((r) => cell(REGIME_LABEL[r], pm.halfWidthLog[r], pm.sloQuantileLog[r]))
          .join(' · ');
      return QUEUE_REGIMES.map((r) => {
        const own = pm.halfWidthLog[r] !== undefined;
        return cell(
          `${REGIME_LABEL[r]}${own ? '' : ` (too few runs: ${REGIME_LABEL[coarseOf(r)]}'s)`}`,
          regimeValue(pm.halfWidthLog, m, r),
          regimeValue(pm.sloQuantileLog, m, r),
        );
      }).join(' · ');
    });
    return `| ${METRIC_LABEL[m]} | ${factor} | ${intervals.join(' | ')} |`;
  }).join('\n');
  return `${parts.join('\n\n')}

### The shipped correction and intervals (models/latency/)
ln(client / twin) = the sum below, fitted on the runs of both models where the twin keeps up: one
correction for both. A ceiling C bends a corrected figure v to v / (1 + (v / C)^k)^(1/k), k the
sharpness; its sum is fitted together with C. The interval is the prediction multiplied and divided by the factor shown,
sized from each profile's own out-of-fold residuals, per regime: the twin completes ≥ 95% of its
offered load ("keeps up"), or it does not ("saturated"); TTFT's regimes are also split by the
twin's queue (p99 TTFT under ${QUEUEING_TTFT_MS / 1000} s: "queue bounded"; else "queued"), the two laws of its
correction, where a regime has enough runs for a finite bound; p99 ITL's, where the twin keeps up,
by its prediction (under the fitting runs' median prediction, or not): its errors grow with the
tail. Features: docs/latency.md.

| metric | ln correction | ${profiles.map((p) => `${p}: interval per regime`).join(' | ')} |
|---|---|${profiles.map(() => '---').join('|')}|
${coefficients}`;
}
