import { capacityTokensPerSecond, mustStarve } from '../twin/capacity.js';
import { longestRequest, meanLengths, type RequestLengthSpec } from '../twin/lengths.js';
import { kvCacheTokens, vllmStarts, type Profile } from '../twin/profile.js';
import {
  LIMITS,
  requestsPerSecond,
  scenarioSchema,
  type Scenario,
  type TwinConfig,
} from '../twin/scenario.js';
import type { SimulationOutcome } from './outcome.js';
import {
  predictLatency,
  type LatencyCase,
  type LatencyModel,
  type LatencyPrediction,
  type TwinLatency,
} from '../latency/index.js';

/** The measured grid of the validation runs: both axes. */
export const MEASURED_GRID = [16, 32, 64, 96, 128, 160, 192, 256, 320, 384] as const;

/**
 * Default candidates: the measured grid extended down to 8 and up to 512, with steps an operator
 * would set by hand (about 25-50% apart), so the answer is never far from the best pair.
 */
export const DEFAULT_GRID = {
  concurrent: [8, 16, 24, 32, 48, 64, 96, 128, 160, 192, 224, 256, 320, 384, 448, 512],
  parallel: [8, 16, 24, 32, 48, 64, 96, 128, 160, 192, 256, 320, 384],
} as const;

export interface SearchWorkload {
  rates: number[];
  ranks: number[];
  requestLengths?: RequestLengthSpec;
}

export interface Slo {
  ttftP99Ms?: number;
  itlP99Ms?: number;
}

/**
 * What "serves" means. `paper`: the published rule, the highest throughput that does not starve
 * (completes at least 1 - threshold of the offered tokens; up to 10% may pile up in a queue that
 * grows all window). `stable`: completes at least 99% of the offered tokens and the queue does not
 * grow (its backlog grows by at most 1% of the second half-window's arrivals).
 */
export type Objective = 'paper' | 'stable';
export const STABLE_COMPLETION = 0.99;
export const STABLE_QUEUE_GROWTH = 0.01;

export interface SearchRequest {
  workload: SearchWorkload;
  objective?: Objective;
  /** The profile's latency correction and intervals: SLOs are checked on their upper bounds. */
  latencyModel?: LatencyModel;
  concurrent?: readonly number[];
  parallel?: readonly number[];
  starvationThreshold?: number;
  slo?: Slo;
  durationSeconds?: number;
  seed?: number;
  /**
   * A concurrent value to start each line from (the forest's answer): probes step outwards from it,
   * 1, 2, 4... candidates, until the line's edge is bracketed, then bisect. The answer is the same
   * when starvation is monotone along each line; a close hint needs fewer, cheaper simulations.
   */
  startNear?: number;
}

export interface EvaluatedPoint {
  concurrentAdapters: number;
  parallelAdapters: number;
  feasible: boolean;
  simulated: boolean;
  throughputTokensPerSecond: number;
  offeredTokensPerSecond: number;
  starving: boolean;
  sloViolated: boolean;
  /** Completes at least 99% of its offered load with a queue that does not grow. */
  stable: boolean;
  /** Predicted p99 TTFT and ITL (the corrected figures of `latency`). */
  ttftP99Ms: number;
  itlP99Ms: number;
  /** Simulated pairs only: p50 and p99 TTFT and ITL with their intervals. */
  latency?: LatencyPrediction;
}

export interface SearchResult {
  maxLoraRank: number;
  best: EvaluatedPoint | null;
  /** Why there is no answer, when `best` is null. */
  reason?: string;
  evaluated: EvaluatedPoint[];
  simulations: number;
}

export type PointSimulator = (
  scenario: Scenario,
  profile: Profile,
  starvationThreshold: number,
) => Promise<SimulationOutcome>;

/** A search that cannot be run as asked; `field` names the request field at fault. */
export class SearchInputError extends Error {
  constructor(
    message: string,
    readonly field?: string,
  ) {
    super(message);
  }
}

/** Mean prompt and output tokens of one request of the workload (ShareGPT-like by default). */
function workloadLengths(profile: Profile, workload: SearchWorkload) {
  return meanLengths(workload.requestLengths ?? { kind: 'sharegpt' }, profile.requestLengths);
}

/** Mean prompt + output tokens of one request of the workload. */
export function tokensPerRequest(profile: Profile, workload: SearchWorkload): number {
  const lengths = workloadLengths(profile, workload);
  return lengths.prompt + lengths.output;
}

/** Offered tokens/s of `concurrent` adapters cycling through the workload's rate groups. */
export function offeredTokensPerSecond(
  profile: Profile,
  workload: SearchWorkload,
  concurrent: number,
): number {
  return requestsPerSecond(workload.rates, concurrent) * tokensPerRequest(profile, workload);
}

/** The profile's capacity bound for this workload's request lengths (src/twin/capacity.ts). */
export function workloadCapacity(profile: Profile, workload: SearchWorkload): number {
  return capacityTokensPerSecond(profile, workloadLengths(profile, workload));
}

/** The smallest rank vLLM accepts that fits every adapter. */
export function maxLoraRankFor(profile: Profile, ranks: number[]): number {
  const needed = Math.max(...ranks);
  const rank = [...profile.allowedLoraRanks].sort((a, b) => a - b).find((r) => r >= needed);
  if (rank === undefined) {
    throw new SearchInputError(
      `no allowed max_lora_rank fits rank ${needed} (allowed: ${profile.allowedLoraRanks.join(', ')})`,
      'workload.ranks',
    );
  }
  return rank;
}

export function scenarioFor(
  profile: Profile,
  workload: SearchWorkload,
  concurrent: number,
  parallel: number,
  maxLoraRank: number,
  durationSeconds: number,
  seed: number,
): Scenario {
  return scenarioSchema.parse({
    profile: profile.id,
    config: { maxLoras: parallel, maxCpuLoras: concurrent, maxLoraRank },
    workload: {
      rates: workload.rates,
      ranks: workload.ranks,
      adapterCount: concurrent,
      ...(workload.requestLengths ? { requestLengths: workload.requestLengths } : {}),
    },
    durationSeconds,
    seed,
  });
}

/**
 * A pair decided in closed form, without the twin: vLLM cannot start it (its slots leave less KV
 * cache than one max_model_len sequence), or it must starve (its offered load exceeds the
 * profile's capacity bound by more than the threshold). Undefined when only the twin can tell.
 */
export function decidedWithoutTwin(
  profile: Profile,
  workload: SearchWorkload,
  concurrent: number,
  parallel: number,
  maxLoraRank: number,
  starvationThreshold: number,
): EvaluatedPoint | undefined {
  const point = (feasible: boolean, throughput: number, offered: number): EvaluatedPoint => ({
    concurrentAdapters: concurrent,
    parallelAdapters: parallel,
    feasible,
    simulated: false,
    throughputTokensPerSecond: throughput,
    offeredTokensPerSecond: offered,
    starving: true,
    sloViolated: false,
    stable: false,
    ttftP99Ms: 0,
    itlP99Ms: 0,
  });
  if (!vllmStarts(profile, parallel, maxLoraRank)) return point(false, 0, 0);
  const offered = offeredTokensPerSecond(profile, workload, concurrent);
  const capacity = workloadCapacity(profile, workload);
  if (mustStarve(offered, capacity, starvationThreshold))
    return point(true, Math.min(capacity, offered), offered);
  return undefined;
}

/**
 * Throws SearchInputError (naming workload.requestLengths) when a request could be longer than the
 * model's context: vLLM refuses such requests outright, so no configuration serves them.
 */
export function assertFitsModelLen(
  profile: Profile,
  workload: { requestLengths?: RequestLengthSpec },
): void {
  const spec = workload.requestLengths ?? { kind: 'sharegpt' };
  const longest = longestRequest(spec, profile.requestLengths);
  if (longest > profile.maxModelLen)
    throw new SearchInputError(
      `requests of up to ${longest} tokens (prompt + output) exceed ${profile.id}'s max_model_len of ${profile.maxModelLen}; vLLM rejects them`,
      'workload.requestLengths',
    );
}

/** Throws SearchInputError (naming workload.rates) when simulating `concurrent` adapters would exceed the arrival limit. */
export function assertSimulable(
  workload: SearchWorkload,
  concurrent: number,
  durationSeconds: number,
): void {
  const arrivals = requestsPerSecond(workload.rates, concurrent) * durationSeconds;
  if (arrivals > LIMITS.maxExpectedRequests)
    throw new SearchInputError(
      `with ${concurrent} adapters about ${Math.round(arrivals)} requests would arrive per simulated window; the limit is ${LIMITS.maxExpectedRequests} (lower the rates or the concurrent candidates)`,
      'workload.rates',
    );
}

/** The three LoRA flags of a vLLM server (the twin's config without its batch limits). */
export type VllmFlags = Pick<TwinConfig, 'maxLoras' | 'maxCpuLoras' | 'maxLoraRank'>;

/** What the latency correction reads from a simulated pair (TTFT across arrivals where read). */
export function twinLatencyOf(r: SimulationOutcome, pair: VllmFlags): TwinLatency {
  const across = r.ttftAcrossArrivals;
  return {
    ...pair,
    meanRunningRequests: r.meanRunningRequests,
    completionRatio:
      r.offeredTokensPerSecond > 0 ? r.throughputTokensPerSecond / r.offeredTokensPerSecond : 1,
    ttftMs: across ? { p50: across.p50, p99: across.p99 } : r.ttftMs,
    itlMs: r.itlMs,
    ttftRealisations: across?.realisations ?? 1,
    ...(across?.p99Spread ? { ttftP99Spread: across.p99Spread } : {}),
  };
}

/**
 * What the latency envelope reads from a simulated scenario: its workload and server flags. Only
 * the groups some simulated adapter takes count (adapter i takes group i mod groups).
 */
export function latencyCaseOf(scenario: Scenario): LatencyCase {
  const { workload } = scenario;
  const adapters = workload.adapterCount ?? scenario.config.maxCpuLoras;
  return {
    rates: workload.adapters?.map((a) => a.rate) ?? (workload.rates ?? []).slice(0, adapters),
    ranks: workload.adapters?.map((a) => a.rank) ?? (workload.ranks ?? []).slice(0, adapters),
    requestLengths: workload.requestLengths,
    config: scenario.config,
    durationSeconds: scenario.durationSeconds,
  };
}

/**
 * A simulated scenario's latency: the profile's corrected figures with intervals, and whether the
 * scenario lies where their coverage was measured.
 */
export function pairLatency(
  r: SimulationOutcome,
  scenario: Scenario,
  latencyModel?: LatencyModel,
): LatencyPrediction {
  return predictLatency(latencyModel, twinLatencyOf(r, scenario.config), latencyCaseOf(scenario));
}

/**
 * An SLO is met when the one-sided bounds are within it: the real p99 stays under them in 90% of
 * measured cases, a promise rather than a median.
 */
export function breaksSlo(latency: LatencyPrediction, slo?: Slo): boolean {
  return (
    (slo?.ttftP99Ms !== undefined && latency.ttftMs.p99.sloMs > slo.ttftP99Ms) ||
    (slo?.itlP99Ms !== undefined && latency.itlMs.p99.sloMs > slo.itlP99Ms)
  );
}

export function isStable(r: SimulationOutcome): boolean {
  return (
    r.feasible &&
    r.throughputTokensPerSecond >= STABLE_COMPLETION * r.offeredTokensPerSecond &&
    r.queueGrowthShare <= STABLE_QUEUE_GROWTH
  );
}

export interface PointOptions {
  slo?: Slo;
  latencyModel?: LatencyModel;
}

/** One simulated pair as the search reports it, with its SLO verdict. */
export function evaluatedPoint(
  scenario: Scenario,
  r: SimulationOutcome,
  options: PointOptions = {},
): EvaluatedPoint {
  const flags = scenario.config;
  const latency = pairLatency(r, scenario, options.latencyModel);
  return {
    concurrentAdapters: flags.maxCpuLoras,
    parallelAdapters: flags.maxLoras,
    feasible: r.feasible,
    simulated: true,
    throughputTokensPerSecond: r.throughputTokensPerSecond,
    offeredTokensPerSecond: r.offeredTokensPerSecond,
    starving: r.starving,
    sloViolated: r.feasible && breaksSlo(latency, options.slo),
    stable: isStable(r),
    ttftP99Ms: latency.ttftMs.p99.ms,
    itlP99Ms: latency.itlMs.p99.ms,
    latency,
  };
}

/** Whether a pair serves the workload under the objective (and the SLO, already in the point). */
export function servesObjective(p: EvaluatedPoint, objective: Objective = 'paper'): boolean {
  return p.feasible && !p.starving && !p.sloViolated && (objective === 'paper' || p.stable);
}

/** The grid value nearest in ratio (16 -> 24 is as far as 128 -> 192); the first on a tie. */
export function snapLog(value: number, grid: readonly number[]): number {
  return grid.reduce((best, g) =>
    Math.abs(Math.log(g / value)) < Math.abs(Math.log(best / value)) ? g : best,
  );
}

/** Grid values in ascending order, each once. */
export const sortedUnique = (values: readonly number[]) =>
  [...new Set(values)].sort((a, b) => a - b);

/**
 * Throughputs closer than this (relative) are a tie: at equal adapters, slot settings differ by
 * less than the twin's run-to-run noise, and the cheaper setting is the better advice.
 */
export const THROUGHPUT_TIE_TOLERANCE = 0.005;

/** Better = higher throughput; within the tie tolerance, fewer slots, then fewer adapters. */
export function better(a: EvaluatedPoint, b: EvaluatedPoint | null): boolean {
  if (!b) return true;
  const ta = a.throughputTokensPerSecond;
  const tb = b.throughputTokensPerSecond;
  if (Math.abs(ta - tb) > THROUGHPUT_TIE_TOLERANCE * Math.max(ta, tb)) return ta > tb;
  if (a.parallelAdapters !== b.parallelAdapters) return a.parallelAdapters < b.parallelAdapters;
  if (a.concurrentAdapters !== b.concurrentAdapters)
    return a.concurrentAdapters < b.concurrentAdapters;
  return ta > tb;
}

/**
 * Finds the feasible pair (concurrent >= parallel) with the highest throughput that neither starves
 * nor breaks the SLO. Uses the problem's structure: a parallel setting whose KV cache cannot hold
 * one max_model_len sequence is infeasible without simulating; for a fixed parallel setting,
 * starvation is (nearly) monotone in concurrent adapters, and throughput grows with them while
 * nothing starves, so each line searches for its largest serving concurrent value (bisection, jumping
 * to the top once a probe serves, which settles light workloads in two probes). The
 * lines advance in rounds whose probes run in parallel, and a line is dropped once it cannot reach
 * the largest serving concurrent value already found. Decisions use only whole rounds, so the
 * evaluated points and the answer are deterministic.
 */
export async function searchOptimum(
  profile: Profile,
  request: SearchRequest,
  simulate: PointSimulator,
): Promise<SearchResult> {
  const threshold = request.starvationThreshold ?? 0.1;
  const durationSeconds = request.durationSeconds ?? 3600;
  const seed = request.seed ?? 1;
  const { workload, slo, latencyModel } = request;
  const objective = request.objective ?? 'paper';
  const serves = (p: EvaluatedPoint) => servesObjective(p, objective);
  const maxLoraRank = maxLoraRankFor(profile, workload.ranks);
  assertFitsModelLen(profile, workload);
  const concurrent = sortedUnique(request.concurrent ?? DEFAULT_GRID.concurrent);
  const parallel = sortedUnique(request.parallel ?? DEFAULT_GRID.parallel);

  const evaluated: EvaluatedPoint[] = [];
  let simulations = 0;

  // Candidates whose offered load exceeds what the GPU can physically complete by more than the
  // threshold starve whatever the slots: they are marked without simulating (and never count
  // against the arrival limit, however heavy).
  const capacity = workloadCapacity(profile, workload);
  const servable = concurrent.filter(
    (c) => !mustStarve(offeredTokensPerSecond(profile, workload, c), capacity, threshold),
  );
  const heaviest = servable[servable.length - 1];
  if (heaviest !== undefined) assertSimulable(workload, heaviest, durationSeconds);

  const lines = parallel
    .map((p) => ({ p, candidates: concurrent.filter((c) => c >= p), lo: -1, hi: 0, step: 1 }))
    .filter((line) => line.candidates.length > 0);
  for (const line of lines) line.hi = line.candidates.length;
  const overCapacity = (line: (typeof lines)[number]) => {
    const cut = line.candidates.findIndex((c) => !servable.includes(c));
    if (cut < 0) return;
    for (const c of line.candidates.slice(cut))
      evaluated.push(decidedWithoutTwin(profile, workload, c, line.p, maxLoraRank, threshold)!);
    line.candidates = line.candidates.slice(0, cut);
    line.hi = cut;
  };
  const hint = request.startNear;
  /** The next candidate a line probes: [lo, hi) brackets its edge (lo serves, hi starves). */
  const nextProbe = (line: (typeof lines)[number]): number => {
    const n = line.candidates.length;
    if (hint !== undefined) {
      if (line.lo < 0 && line.hi === n)
        return line.candidates.indexOf(snapLog(hint, line.candidates));
      // Expand away from the hint until both sides are known, doubling the step.
      const expand =
        line.hi === n
          ? Math.min(n - 1, line.lo + line.step)
          : line.lo < 0
            ? Math.max(0, line.hi - line.step)
            : -1;
      if (expand >= 0) {
        line.step *= 2;
        return expand;
      }
      return (line.lo + line.hi) >> 1;
    }
    // Gallop: a line whose probes have all served so far tries its largest candidate next, which
    // settles light workloads in two probes; otherwise bisect.
    return line.lo >= 0 && line.hi === n ? n - 1 : (line.lo + line.hi) >> 1;
  };

  // Infeasible parallel settings: vLLM would not start, whatever the adapters.
  let startable = 0;
  const active = lines.filter((line) => {
    if (vllmStarts(profile, line.p, maxLoraRank)) {
      startable++;
      overCapacity(line);
      return line.candidates.length > 0;
    }
    for (const c of line.candidates)
      evaluated.push(decidedWithoutTwin(profile, workload, c, line.p, maxLoraRank, threshold)!);
    return false;
  });

  let best: EvaluatedPoint | null = null;
  let bestServingC = -Infinity;
  let open = active;
  while (open.length > 0) {
    const probes = open.map((line) => {
      const index = nextProbe(line);
      const scenario = scenarioFor(
        profile,
        workload,
        line.candidates[index]!,
        line.p,
        maxLoraRank,
        durationSeconds,
        seed,
      );
      return { line, index, scenario };
    });
    const results = await Promise.all(
      probes.map(({ scenario }) => simulate(scenario, profile, threshold)),
    );
    simulations += results.length;
    probes.forEach(({ line, index, scenario }, i) => {
      const point = evaluatedPoint(scenario, results[i]!, {
        ...(slo ? { slo } : {}),
        ...(latencyModel ? { latencyModel } : {}),
      });
      evaluated.push(point);
      if (serves(point)) {
        line.lo = index;
        bestServingC = Math.max(bestServingC, point.concurrentAdapters);
      } else {
        line.hi = index;
      }
    });
    // A line stays open while it has untested candidates that could match the best serving count.
    open = open.filter(
      (line) => line.hi - line.lo > 1 && line.candidates[line.hi - 1]! >= bestServingC,
    );
  }

  evaluated.sort(
    (a, b) =>
      a.parallelAdapters - b.parallelAdapters || a.concurrentAdapters - b.concurrentAdapters,
  );
  // Chosen over the sorted list, so the answer does not depend on the order probes finished in.
  for (const point of evaluated) if (serves(point) && better(point, best)) best = point;
  const result: SearchResult = { maxLoraRank, best, evaluated, simulations };
  if (!best)
    result.reason = explainNone(evaluated, startable, concurrent[0]!, slo, objective, {
      kvCacheTokensAtOneSlot: kvCacheTokens(profile, 1, maxLoraRank),
      maxModelLen: profile.maxModelLen,
    });
  return result;
}

function explainNone(
  evaluated: EvaluatedPoint[],
  feasibleLines: number,
  smallest: number,
  slo: Slo | undefined,
  objective: Objective,
  start: { kvCacheTokensAtOneSlot: number; maxModelLen: number },
): string {
  if (feasibleLines === 0) {
    // Say by how much: a model whose weights leave no cache at all is not fixed by fewer slots.
    const kv = Math.max(0, Math.floor(start.kvCacheTokensAtOneSlot));
    return `no parallel setting is feasible: every one leaves too little KV cache for one max_model_len sequence at this max_lora_rank (with 1 slot the cache holds ${kv} tokens, short of one ${start.maxModelLen}-token sequence${kv === 0 ? ': the weights and reserves fill the GPU, so a larger GPU or a smaller model is needed' : '; a lower --max-model-len or --max-lora-rank, or a larger GPU, would start'})`;
  }
  const judged = evaluated.filter((p) => p.feasible);
  if (judged.every((p) => p.starving)) {
    return `every feasible configuration starves, even with the fewest adapters (${smallest}): the workload's adapters send more than one GPU can serve; split them over more GPUs or lower the rates`;
  }
  if (objective === 'stable' && judged.every((p) => p.starving || !p.stable)) {
    return `no configuration completes ${100 * STABLE_COMPLETION}% of the offered load with a queue that stays bounded (objective "stable"); objective "paper" accepts a shortfall up to the starvation threshold`;
  }
  const sloText = [
    slo?.ttftP99Ms !== undefined ? `TTFT p99 <= ${slo.ttftP99Ms} ms` : '',
    slo?.itlP99Ms !== undefined ? `ITL p99 <= ${slo.itlP99Ms} ms` : '',
  ]
    .filter(Boolean)
    .join(' and ');
  return `no configuration that does not starve meets the SLO (${sloText})${closestMiss(judged, slo)}`;
}

/**
 * The pair that came closest to the SLO among those that serve, with its bounds: how far the
 * operator is from an answer (by the largest bound-over-limit ratio of its limits).
 */
function closestMiss(judged: readonly EvaluatedPoint[], slo: Slo | undefined): string {
  if (!slo) return '';
  const over = (p: EvaluatedPoint) => {
    const ttft = p.latency?.ttftMs.p99.sloMs ?? p.ttftP99Ms;
    const itl = p.latency?.itlMs.p99.sloMs ?? p.itlP99Ms;
    return Math.max(
      slo.ttftP99Ms !== undefined ? ttft / slo.ttftP99Ms : 0,
      slo.itlP99Ms !== undefined ? itl / slo.itlP99Ms : 0,
    );
  };
  const serving = judged.filter((p) => !p.starving && p.simulated);
  if (serving.length === 0) return '';
  const best = serving.reduce((a, b) => (over(b) < over(a) ? b : a));
  const bounds = [
    slo.ttftP99Ms !== undefined
      ? `p99 TTFT bound ${Math.round(best.latency?.ttftMs.p99.sloMs ?? best.ttftP99Ms)} ms`
      : '',
    slo.itlP99Ms !== undefined
      ? `p99 ITL bound ${Math.round(best.latency?.itlMs.p99.sloMs ?? best.itlP99Ms)} ms`
      : '',
  ]
    .filter(Boolean)
    .join(', ');
  const outside = best.latency?.envelopeDistance;
  return `; the closest is ${best.concurrentAdapters} adapters with ${best.parallelAdapters} slots: ${bounds}, ${(100 * (over(best) - 1)).toFixed(0)}% over the limit${outside ? ` (its bounds widened for lying ${outside.toFixed(2)} ln units outside the measured runs)` : ''}`;
}
