// docs/validation/extrapolation.md: the latency intervals on whole regimes held out of the fit.
import { TWIN_VERSION } from '../twin/index.js';
import { growthIn, type Extrapolation } from '../latency/index.js';
import { latencyObservations } from './latency.js';
import { pct } from './metrics.js';
import {
  EXTRAPOLATED_METRICS,
  coverageOf,
  growthOf,
  holdOutRegimes,
  nestedCoverage,
  type ExtrapolatedMetric,
  type HeldOutCase,
} from './regimes.js';
import type { RunComparison } from './comparison.js';

const LABEL: Record<ExtrapolatedMetric, string> = {
  ttftP50: 'p50 TTFT',
  ttftP99: 'p99 TTFT',
  itlP50: 'p50 ITL',
  itlP99: 'p99 ITL',
};

/** Distance bands of the report: inside, then up to 2x, 4x and beyond the measured range. */
const BANDS: Array<{ label: string; test: (d: number) => boolean }> = [
  { label: 'inside (0)', test: (d) => d === 0 },
  { label: '0-0.69 (up to 2x)', test: (d) => d > 0 && d <= Math.log(2) + 1e-9 },
  { label: '0.69-1.39 (2-4x)', test: (d) => d > Math.log(2) + 1e-9 && d <= Math.log(4) + 1e-9 },
  { label: '> 1.39 (beyond 4x)', test: (d) => d > Math.log(4) + 1e-9 },
];

const frac = (v: number) => (Number.isFinite(v) ? pct(100 * v) : '—');
const mape = (v: number) => (Number.isFinite(v) ? pct(v) : '—');

/**
 * The leave-regime-out validation: each regime held out, the growth of the intervals per unit of
 * distance sized on the held-out runs (all regimes, for the model files), and each regime's
 * coverage with a growth sized on the other regimes only (for the report).
 */
export function regimeValidation(runs: readonly RunComparison[]): {
  growth: Record<ExtrapolatedMetric, Extrapolation>;
  report: string;
  cases: HeldOutCase[];
} {
  const compared = runs.filter((r) => r.realOk && r.twinFeasible);
  const observations = latencyObservations(runs);
  const ratio = new Map(observations.map((o, i) => [o, compared[i]!.realCompletionRatio]));
  const { cases, regimes, skipped } = holdOutRegimes(observations, (o) => ratio.get(o)!, {
    twinVersion: TWIN_VERSION,
    source: 'leave-regime-out fold',
  });
  const growth = Object.fromEntries(
    EXTRAPOLATED_METRICS.map((m) => [m, growthOf(cases, m)]),
  ) as Record<ExtrapolatedMetric, Extrapolation>;

  const lines: string[] = [
    '<!-- written by npm run validate:twin -->',
    '',
    '# Latency intervals on regimes the fit never saw',
    '',
    `Leave-one-workload-out (docs/validation/twin.md) tests the latency model between the measured workloads. Here whole regimes are held out of the fit instead, so that their runs lie outside what the model was fitted on, as a user's workload may: ${regimes.join('; ')}. Each regime's runs are predicted by a model fitted on every other run (the same pooled fit, the same conformal widths), exactly as the service predicts (\`predictLatency\`). A run's distance is ln(value / nearest end of the fitting runs' range) of its furthest feature (rates per adapter, adapter ranks, --max-lora-rank, --max-cpu-loras, --max-loras): 0.69 is twice the largest fitted value or half the smallest.`,
    '',
    `Outside the envelope the SLO bound starts at least at the interval's upper end: the fit's one-sided quantile is its runs' balance of real figures above and below the prediction, which beyond them is unknown, while the interval's half-width bounds either sign. Then the interval's half-width and the bound's quantile grow by \`k x distance\` (ln units), with k the smallest growth that brings the held-out runs outside their fit's envelope to ${pct(100 * 0.9)} coverage. As the widths are, the growth is sized per twin regime: on the held-out runs the twin says keep up, for a pair that keeps up, and on those it says saturate, for one that saturates (pooled where a regime's runs are too few for the quantile). A server the twin says starves errs beyond the measured runs far more than one that keeps up; one pooled k under-widened the first and over-widened the second. The model files carry k sized on every regime. "Before" below is the fit's own widths; "after" is the service's widening (the bound's start, then k sized on the *other* regimes only), so the growth is validated out of sample too.`,
    '',
    '## Growth per unit of distance (in the model files)',
    '',
    '| metric | twin regime | interval k | bound k | held-out runs outside it was sized on |',
    '|---|---|---:|---:|---:|',
    ...EXTRAPOLATED_METRICS.flatMap((m) =>
      (['keepsUp', 'saturated'] as const).map((regime) => {
        const g = growthIn(growth[m], regime)!;
        const own = growth[m].perRegime?.[regime] !== undefined;
        return `| ${LABEL[m]} | ${regime === 'keepsUp' ? 'keeps up' : 'saturated'}${own ? '' : ' (pooled)'} | ${g.halfWidthLogPerUnit} | ${g.sloQuantileLogPerUnit} | ${g.runs} |`;
      }),
    ),
    '',
  ];
  for (const subset of [
    { label: 'all held-out runs', test: () => true },
    {
      label: 'held-out runs that keep up (real ≥ 95% of offered)',
      test: (c: HeldOutCase) => c.keepsUp,
    },
  ]) {
    lines.push(`## Per regime, ${subset.label}`, '');
    for (const metric of ['ttftP99', 'itlP99', 'ttftP50', 'itlP50'] as const) {
      lines.push(
        `### ${LABEL[metric]}`,
        '',
        '| regime held out | runs | median distance | MAPE | interval coverage before → after | under bound before → after |',
        '|---|---:|---:|---:|---:|---:|',
      );
      const rows = nestedCoverage(cases, regimes, metric, subset.test);
      for (const r of rows)
        lines.push(
          `| ${r.regime} | ${r.before.runs} | ${r.medianDistance.toFixed(2)} | ${mape(r.before.mape)} | ${frac(r.before.coverage)} → ${frac(r.after.coverage)} | ${frac(r.before.underBound)} → ${frac(r.after.underBound)} |`,
        );
      // Pooled over regimes, each run with the growth sized without its own regime.
      const pooled = rows.reduce(
        (acc, r) => ({
          runs: acc.runs + r.after.runs,
          coveredBefore: acc.coveredBefore + r.before.coverage * r.before.runs,
          coveredAfter: acc.coveredAfter + r.after.coverage * r.after.runs,
          underBefore: acc.underBefore + r.before.underBound * r.before.runs,
          underAfter: acc.underAfter + r.after.underBound * r.after.runs,
        }),
        { runs: 0, coveredBefore: 0, coveredAfter: 0, underBefore: 0, underAfter: 0 },
      );
      if (pooled.runs > 0)
        lines.push(
          `| **all regimes** | ${pooled.runs} | | | ${frac(pooled.coveredBefore / pooled.runs)} → **${frac(pooled.coveredAfter / pooled.runs)}** | ${frac(pooled.underBefore / pooled.runs)} → **${frac(pooled.underAfter / pooled.runs)}** |`,
        );
      lines.push('');
    }
  }
  lines.push(
    '## By distance from the fitting runs (p99s, all held-out runs, growth sized on the other regimes)',
    '',
    '| metric | distance | runs | MAPE | interval coverage before → after | under bound before → after |',
    '|---|---|---:|---:|---:|---:|',
  );
  for (const metric of ['ttftP99', 'itlP99'] as const) {
    // Each case with the growth its own regime did not size.
    const growthWithout = new Map(
      regimes.map((regime) => [
        regime,
        growthOf(
          cases.filter((c) => c.regime !== regime),
          metric,
        ),
      ]),
    );
    for (const band of BANDS) {
      const mine = cases.filter((c) => c.metric === metric && band.test(c.distance));
      const before = coverageOf(mine);
      let inside = 0;
      let under = 0;
      for (const c of mine) {
        const after = coverageOf([c], growthWithout.get(c.regime));
        inside += after.coverage;
        under += after.underBound;
      }
      lines.push(
        `| ${LABEL[metric]} | ${band.label} | ${mine.length} | ${mape(before.mape)} | ${frac(before.coverage)} → ${frac(mine.length ? inside / mine.length : NaN)} | ${frac(before.underBound)} → ${frac(mine.length ? under / mine.length : NaN)} |`,
      );
    }
  }
  lines.push('');
  if (skipped.length > 0)
    lines.push(
      '## Regimes that could not be held out',
      '',
      ...skipped.map((s) => `- ${s.regime}: ${s.why}`),
      '',
    );
  lines.push(
    '## What this cannot show',
    '',
    '- Every regime here is still one GPU (H100 64GB), two models and vLLM 0.8.5: distance in rates, ranks and adapter counts, not in hardware or engine version.',
    '- A held-out regime removes runs the fit needed; the growth is sized on how the fit errs when its own coverage shrinks, which is a proxy for a user beyond all measured runs, not the same thing.',
    "- Inside the envelope (distance 0) the widths are the leave-one-workload-out ones and do not grow: a held-out regime's runs at distance 0 show how the fit fares with fewer runs, not with extrapolation.",
    '',
  );
  return { growth, report: lines.join('\n'), cases };
}
