// What every recommendation states beside its pair: headroom, the limit that binds, and warnings
// an operator must not miss (a queue that grows, latency without calibration or outside it).
import {
  assertSimulable,
  offeredTokensPerSecond,
  scenarioFor,
  STABLE_COMPLETION,
  workloadCapacity,
  type EvaluatedPoint,
  type Objective,
  type PointSimulator,
  type SearchWorkload,
  type Slo,
} from '../search/index.js';
import type { OutsideFeature } from '../envelope/index.js';
import { LIMITS, type Profile } from '../twin/index.js';
import { requestsPerSecond } from '../twin/scenario.js';

export interface Headroom {
  /** null: no load, so no growth of it ever starves. */
  percent: number | null;
  /** True when the pair still serves at the largest multiplier tried: the headroom is at least this. */
  atLeast: boolean;
  method: 'twin-bisection' | 'capacity-bound';
  resolutionPercent: number;
}

/** Bisection stops when the bracket [serves, starves] is this tight (relative). */
export const HEADROOM_RESOLUTION = 0.05;
/**
 * Headroom is looked for up to doubled rates: beyond, the answer is "at least 100%", which is all
 * an operator needs, and probing far heavier loads would cost more than the search itself.
 */
export const HEADROOM_MAX_MULTIPLIER = 2;

/**
 * How far every rate can be multiplied before the pair starves, by the twin over the full hour,
 * up to HEADROOM_MAX_MULTIPLIER. An overloaded server completes what it can: a pair that starves
 * at the top multiplier has shown its saturated throughput, which puts the edge near
 * m = saturated / ((1 - threshold) x offered). The estimate and one resolution step below it
 * are then simulated side by side; the answer is the largest multiplier the twin has seen serve.
 * Only if both starve (the saturated throughput overstated the edge) does bisection from 1 follow.
 */
export async function headroomByTwin(
  profile: Profile,
  workload: SearchWorkload,
  pair: { concurrentAdapters: number; parallelAdapters: number },
  maxLoraRank: number,
  threshold: number,
  simulate: PointSimulator,
): Promise<Headroom> {
  const { concurrentAdapters: c, parallelAdapters: p } = pair;
  const capacityMultiplier = capacityHeadroomMultiplier(profile, workload, c, threshold);
  const result = (lo: number, atLeast = false): Headroom => ({
    percent: round1(100 * (lo - 1)),
    atLeast,
    method: 'twin-bisection',
    resolutionPercent: round1(100 * HEADROOM_RESOLUTION),
  });
  if (!Number.isFinite(capacityMultiplier)) return { ...result(1, true), percent: null };
  // Never past what one simulation may hold.
  // (0.999: rounding must not push the scaled workload past the limit the search enforces.)
  const arrivalCap =
    (0.999 * LIMITS.maxExpectedRequests) /
    Math.max(1e-12, requestsPerSecond(workload.rates, c) * 3600);
  const top = Math.max(1, Math.min(capacityMultiplier, arrivalCap, HEADROOM_MAX_MULTIPLIER));
  const at = (m: number) => {
    const scaled = { ...workload, rates: workload.rates.map((r) => r * m) };
    assertSimulable(scaled, c, 3600);
    return simulate(scenarioFor(profile, scaled, c, p, maxLoraRank, 3600, 1), profile, threshold);
  };
  const starvesAt = async (m: number) => m >= capacityMultiplier || (await at(m)).starving;

  // When the capacity bound starves at the top, nothing needs simulating there: bisect below it.
  if (top >= capacityMultiplier) return result(await bisect(1, top, starvesAt));
  const saturated = await at(top);
  if (!saturated.starving) return result(top, true);
  const offeredAtOne = saturated.offeredTokensPerSecond / top;
  const estimate = Math.min(
    top,
    Math.max(1, saturated.throughputTokensPerSecond / ((1 - threshold) * offeredAtOne)),
  );
  const below = Math.max(1, estimate / (1 + HEADROOM_RESOLUTION));
  const [starvesAtEstimate, starvesBelow] = await Promise.all([
    starvesAt(estimate),
    below > 1 ? starvesAt(below) : Promise.resolve(false),
  ]);
  if (!starvesAtEstimate) return result(estimate);
  if (!starvesBelow) return result(below);
  // The edge lies below the estimate.
  return result(await bisect(1, below, starvesAt));
}

/** [lo serves, hi starves] shrunk in rounds of two probes at log-thirds, run side by side. */
async function bisect(
  lo: number,
  hi: number,
  starvesAt: (m: number) => Promise<boolean>,
): Promise<number> {
  while (hi / lo > 1 + HEADROOM_RESOLUTION) {
    const step = Math.cbrt(hi / lo);
    const probes = [lo * step, lo * step * step];
    const starves = await Promise.all(probes.map(starvesAt));
    if (starves[0]) hi = probes[0]!;
    else if (starves[1]) [lo, hi] = [probes[0]!, probes[1]!];
    else lo = probes[1]!;
  }
  return lo;
}

/** The multiplier at which even the capacity bound would starve: an upper bound on any headroom. */
export function capacityHeadroomMultiplier(
  profile: Profile,
  workload: SearchWorkload,
  concurrent: number,
  threshold: number,
): number {
  const offered = offeredTokensPerSecond(profile, workload, concurrent);
  if (offered <= 0) return Infinity;
  return workloadCapacity(profile, workload) / ((1 - threshold) * offered);
}

export function headroomByCapacity(
  profile: Profile,
  workload: SearchWorkload,
  concurrent: number,
  threshold: number,
): Headroom {
  const m = capacityHeadroomMultiplier(profile, workload, concurrent, threshold);
  return {
    percent: Number.isFinite(m) ? Math.max(0, round1(100 * (m - 1))) : null,
    atLeast: false,
    method: 'capacity-bound',
    resolutionPercent: 0,
  };
}

const round1 = (v: number) => Math.round(v * 10) / 10;

export interface Binding {
  limit: 'starvation' | 'stability' | 'ttftP99Ms' | 'itlP99Ms';
  detail: string;
}

const secs = (ms: number) =>
  ms >= 10_000 ? `${(ms / 1000).toFixed(0)} s` : `${Math.round(ms)} ms`;

/** The evaluated pair with the fewest adapters above `best` on its line (same slots), if any. */
export function nextOnLine(
  best: EvaluatedPoint,
  evaluated: readonly EvaluatedPoint[],
  include: (e: EvaluatedPoint) => boolean = () => true,
): EvaluatedPoint | undefined {
  return evaluated
    .filter(
      (e) =>
        e.parallelAdapters === best.parallelAdapters &&
        e.concurrentAdapters > best.concurrentAdapters &&
        include(e),
    )
    .sort((a, b) => a.concurrentAdapters - b.concurrentAdapters)[0];
}

/**
 * The busier pair that explains the answer: the next on its line (more adapters, same slots), or,
 * when its line was not climbed (auto settles the slots after climbing the forest's line), the
 * evaluated pair with the fewest more adapters and, among those, the fewest more slots.
 */
function nextBusier(
  best: EvaluatedPoint,
  evaluated: readonly EvaluatedPoint[],
): EvaluatedPoint | undefined {
  return (
    nextOnLine(best, evaluated) ??
    evaluated
      .filter(
        (e) =>
          e.parallelAdapters > best.parallelAdapters &&
          e.concurrentAdapters > best.concurrentAdapters,
      )
      .sort(
        (a, b) =>
          a.concurrentAdapters - b.concurrentAdapters || a.parallelAdapters - b.parallelAdapters,
      )[0]
  );
}

/**
 * What stops the next busier pair (nextBusier): the first of starvation, the SLO's upper bounds
 * and (objective "stable") a growing queue that it breaks.
 */
export function bindingLimit(
  best: EvaluatedPoint,
  evaluated: readonly EvaluatedPoint[],
  slo: Slo | undefined,
  objective: Objective,
): Binding | undefined {
  const next = nextBusier(best, evaluated);
  if (!next) return undefined;
  const at = `${next.concurrentAdapters} adapters with ${next.parallelAdapters} slots`;
  if (!next.feasible || next.starving)
    return {
      limit: 'starvation',
      detail: `${at} would starve (${Math.round(next.throughputTokensPerSecond)} of ${Math.round(next.offeredTokensPerSecond)} tok/s offered)`,
    };
  if (next.sloViolated && next.latency) {
    if (slo?.ttftP99Ms !== undefined && next.latency.ttftMs.p99.sloMs > slo.ttftP99Ms)
      return {
        limit: 'ttftP99Ms',
        detail: `${at} could reach a p99 TTFT of ${secs(next.latency.ttftMs.p99.sloMs)} (90% bound) against the SLO's ${secs(slo.ttftP99Ms)}`,
      };
    if (slo?.itlP99Ms !== undefined)
      return {
        limit: 'itlP99Ms',
        detail: `${at} could reach a p99 ITL of ${secs(next.latency.itlMs.p99.sloMs)} (90% bound) against the SLO's ${secs(slo.itlP99Ms)}`,
      };
  }
  if (objective === 'stable' && !next.stable)
    return {
      limit: 'stability',
      detail: `${at} would complete ${((100 * next.throughputTokensPerSecond) / next.offeredTokensPerSecond).toFixed(1)}% of its load or let its queue grow`,
    };
  return undefined;
}

/** Plain statements for the operator; the queue warning is the one the paper's rule hides. */
export function warningsFor(
  best: {
    throughputTokensPerSecond: number;
    offeredTokensPerSecond: number;
    stable?: boolean;
    latency?: EvaluatedPoint['latency'];
  },
  simulated: boolean,
  slo?: Slo,
): string[] {
  const warnings: string[] = [];
  const share =
    best.offeredTokensPerSecond > 0
      ? best.throughputTokensPerSecond / best.offeredTokensPerSecond
      : 1;
  const growing = simulated ? best.stable === false : share < STABLE_COMPLETION;
  if (growing) {
    const ttft = best.latency ? ` (predicted p99 TTFT ${secs(best.latency.ttftMs.p99.ms)})` : '';
    warnings.push(
      `This pair completes ${(100 * share).toFixed(1)}% of its offered load: requests queue up faster than they finish, so the queue and the wait grow for as long as the load lasts${ttft}. The paper's rule accepts it; objective "stable" picks a pair that keeps up.`,
    );
  }
  if (!simulated)
    warnings.push(
      'method "model" runs no simulation: latency is not predicted and the headroom is the closed-form capacity bound (an upper bound); ask method "auto" for twin-checked figures',
    );
  else if (best.latency && !best.latency.calibrated)
    warnings.push(
      "this profile has no latency calibration (models/latency/): the latencies are the twin's own, whose p99 ITL runs short of real servers",
    );
  else if (best.latency?.outsideEnvelope?.length)
    warnings.push(
      `The latency intervals' coverage was measured on real runs unlike this one (${best.latency.outsideEnvelope.map(outsideText).join('; ')}): the figures are the corrected twin's, but how often the real p99 stays under the bound is not measured here${slo ? ', and the SLO check relies on that bound' : ''}.${widenedText(best.latency.envelopeDistance)}`,
    );
  return warnings;
}

/** How far outside the envelope, and that the bounds grew for it (docs/validation/extrapolation.md). */
function widenedText(distance: number | undefined): string {
  if (distance === undefined || !(distance > 0)) return '';
  return ` It lies ${distance.toFixed(2)} ln units outside them (x${Math.exp(distance).toFixed(2)} beyond the furthest measured value): its SLO bounds start at their intervals' upper ends, and both were widened by the growth measured on whole regimes held out of the fit.`;
}

/** One feature outside the measured envelope, with what was measured. */
function outsideText(o: OutsideFeature): string {
  const [lo, hi] = o.trained;
  const measured =
    typeof lo === 'number' ? (lo === hi ? `${lo}` : `${lo}-${hi}`) : o.trained.join(', ');
  return `${o.feature} ${o.value}, measured ${measured}`;
}
