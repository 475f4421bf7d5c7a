// Where the throughput an SLO recommendation gives up comes from: the rule "the highest-throughput
// pair that does not starve and whose p99 bounds meet the SLO", applied to the measured pairs of
// each case with one part at a time replaced by what the real server measured.
import type { LatencyEstimate } from '../latency/index.js';
import type { MeasuredPoint } from './recommend.js';

/** A measured pair as the service sees it (twin verdict, latency estimates) and as it ran. */
export interface JudgedPair {
  real: MeasuredPoint;
  twinStarving: boolean;
  ttftP99: LatencyEstimate;
  itlP99: LatencyEstimate;
}

/** A p99 TTFT and ITL, measured or predicted. */
export type P99s = Pick<MeasuredPoint, 'ttftP99Ms' | 'itlP99Ms'>;

export interface SloCase {
  /** The measured pairs the twin could simulate. */
  pairs: JudgedPair[];
  /** Every measured pair of the workload: the real best is looked for among them. */
  measured: MeasuredPoint[];
  /** Whether these p99s meet the case's SLO. */
  meets: (p: P99s) => boolean;
}

export interface SloRule {
  label: string;
  starving: (p: JudgedPair) => boolean;
  /** The p99 TTFT and ITL the SLO is checked against. */
  p99: (p: JudgedPair) => P99s;
}

/** The service's rule, and the same rule with its verdicts, its latency or both made exact. */
export const SLO_RULES: readonly SloRule[] = [
  {
    label: "the service's rule: the twin's verdict, the 90% bounds",
    starving: (p) => p.twinStarving,
    p99: (p) => ({ ttftP99Ms: p.ttftP99.sloMs, itlP99Ms: p.itlP99.sloMs }),
  },
  {
    label: "the real verdict, the 90% bounds (what the latency model's errors and margin cost)",
    starving: (p) => p.real.starving,
    p99: (p) => ({ ttftP99Ms: p.ttftP99.sloMs, itlP99Ms: p.itlP99.sloMs }),
  },
  {
    label: "the twin's verdict, the real p99 (what the twin's verdicts cost)",
    starving: (p) => p.twinStarving,
    p99: (p) => p.real,
  },
  {
    label:
      "the real verdict, the real p99 times the bound's margin sloMs / ms (what the margin alone costs on this grid)",
    starving: (p) => p.real.starving,
    p99: (p) => ({
      ttftP99Ms: (p.real.ttftP99Ms * p.ttftP99.sloMs) / p.ttftP99.ms,
      itlP99Ms: (p.real.itlP99Ms * p.itlP99.sloMs) / p.itlP99.ms,
    }),
  },
  {
    label: "the twin's verdict, the point estimates (no margin)",
    starving: (p) => p.twinStarving,
    p99: (p) => ({ ttftP99Ms: p.ttftP99.ms, itlP99Ms: p.itlP99.ms }),
  },
];

const bestBy = <T>(items: readonly T[], throughput: (t: T) => number): T | undefined =>
  items.reduce<T | undefined>((b, t) => (!b || throughput(t) > throughput(b) ? t : b), undefined);

/** Whether a measured pair really served its load and met the SLO on the real server. */
export const reallyMeets = (p: MeasuredPoint, meets: (p: P99s) => boolean): boolean =>
  p.ok && !p.starving && meets(p);

/** The real best pair under an SLO: the measured pair of highest throughput that really meets it. */
export const realBestMeeting = (
  measured: readonly MeasuredPoint[],
  meets: (p: P99s) => boolean,
): MeasuredPoint | null =>
  bestBy(
    measured.filter((p) => reallyMeets(p, meets)),
    (p) => p.throughput,
  ) ?? null;

/**
 * How often the rule's pair really meets the SLO (of the cases where it picks one), and the mean
 * share of the real best pair's throughput it gives up where it does.
 */
export function ruleOutcome(
  cases: readonly SloCase[],
  rule: SloRule,
): { judged: number; kept: number; meanLostPct: number } {
  let judged = 0;
  let kept = 0;
  const lost: number[] = [];
  for (const c of cases) {
    const pick = bestBy(
      c.pairs.filter((p) => !rule.starving(p) && c.meets(rule.p99(p))),
      (p) => p.real.throughput,
    );
    if (!pick) continue;
    judged++;
    if (!reallyMeets(pick.real, c.meets)) continue;
    kept++;
    const best = realBestMeeting(c.measured, c.meets);
    if (best) lost.push((100 * (best.throughput - pick.real.throughput)) / best.throughput);
  }
  return {
    judged,
    kept,
    meanLostPct: lost.length ? lost.reduce((s, v) => s + v, 0) / lost.length : NaN,
  };
}
