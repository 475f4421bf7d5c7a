import type { LatencyModel } from '../latency/index.js';
import {
  evaluatedPoint,
  maxLoraRankFor,
  servesObjective,
  STABLE_COMPLETION,
  type EvaluatedPoint,
  type Objective,
  type PointSimulator,
  type Slo,
  type VllmFlags,
} from '../search/index.js';
import type { RequestLengthSpec } from '../twin/lengths.js';
import { scenarioSchema, vllmStarts, type Profile } from '../twin/index.js';
import { estimateGpu, type GpuEstimate, type MeanLengths } from '../search/estimate.js';

export interface CatalogAdapter {
  id: string;
  /** Requests per second. */
  rate: number;
  rank: number;
}

/** One adapter's share of traffic on one GPU: the whole adapter (weight 1) or a replica. */
export interface Piece {
  id: string;
  rank: number;
  /** Requests per second this GPU receives for the adapter: its rate x weight. */
  rate: number;
  weight: number;
}

/** Everything a placement needs besides the catalog: the profile, what serving means, the twin. */
export interface PlacementContext {
  profile: Profile;
  lengths: MeanLengths;
  requestLengths: RequestLengthSpec;
  starvationThreshold: number;
  objective: Objective;
  slo?: Slo;
  latencyModel?: LatencyModel;
  simulate: PointSimulator;
}

/** vLLM keeps every adapter it may serve in host memory: beyond this the twin is unmeasured. */
export const MAX_ADAPTERS_PER_GPU = 512;
/**
 * One-hour windows, as the recommendation and the measurements use, for every verdict a placement
 * acts on: shorter windows end with a larger share of work in flight and judge a GPU that serves
 * as starving (a 100-adapter GPU completes 0.94 of its load in 20 minutes and 0.98 in an hour).
 * The packing probes and the final verification run the same scenarios, so the final one is a
 * cache hit.
 */
export const VERIFY_SECONDS = 3600;
/** The lower bound's search only locates the best pairs; they are re-run for an hour. */
export const SEARCH_SECONDS = 600;

/** Slot counts a placement chooses from: powers of two and the hand-set steps between them. */
const SLOT_LADDER = [1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 160, 192, 256, 320, 384];

export const offeredOf = (ctx: PlacementContext, pieces: readonly Piece[]) =>
  pieces.reduce((s, p) => s + p.rate, 0) * (ctx.lengths.prompt + ctx.lengths.output);

/**
 * The flags of a GPU holding `pieces`: every adapter held (--max-cpu-loras), the smallest rank vLLM
 * accepts that fits them, and the slot count the closed-form estimate rates best among those vLLM
 * can start (fewer slots on a near tie: they leave more KV cache). Undefined when vLLM cannot
 * start with even one slot of that rank.
 */
export function flagsFor(
  ctx: PlacementContext,
  pieces: readonly Piece[],
): { flags: VllmFlags; estimate: GpuEstimate } | undefined {
  const maxLoraRank = maxLoraRankFor(
    ctx.profile,
    pieces.map((p) => p.rank),
  );
  const rates = pieces.map((p) => p.rate);
  let best: { flags: VllmFlags; estimate: GpuEstimate } | undefined;
  for (const maxLoras of SLOT_LADDER) {
    if (maxLoras > pieces.length) break;
    if (!vllmStarts(ctx.profile, maxLoras, maxLoraRank)) break;
    const estimate = estimateGpu(ctx.profile, ctx.lengths, { rates, maxLoras, maxLoraRank });
    if (
      !best ||
      estimate.throughputTokensPerSecond > 1.005 * best.estimate.throughputTokensPerSecond
    )
      best = { flags: { maxLoras, maxCpuLoras: pieces.length, maxLoraRank }, estimate };
  }
  if (!best && pieces.length > 0 && vllmStarts(ctx.profile, 1, maxLoraRank)) {
    // Fewer adapters than the ladder's first step above them: one slot per adapter.
    const maxLoras = Math.min(pieces.length, SLOT_LADDER.find((s) => s >= pieces.length) ?? 1);
    const estimate = estimateGpu(ctx.profile, ctx.lengths, { rates, maxLoras, maxLoraRank });
    best = { flags: { maxLoras, maxCpuLoras: pieces.length, maxLoraRank }, estimate };
  }
  return best;
}

/** The estimate's verdict, with the same completion rule the twin's verdict uses. */
export function estimateServes(ctx: PlacementContext, estimate: GpuEstimate, margin = 0): boolean {
  return (
    estimate.throughputTokensPerSecond >=
    (requiredCompletion(ctx) + margin) * estimate.offeredTokensPerSecond
  );
}

/** The share of its load a GPU that serves completes at least, under the objective. */
export const requiredCompletion = (ctx: PlacementContext) =>
  ctx.objective === 'stable' ? STABLE_COMPLETION : 1 - ctx.starvationThreshold;

/** The estimate's completion is a little optimistic: room is counted this far under the rule. */
export const CAPACITY_MARGIN = 0.02;

/**
 * The most load a GPU holding these adapters serves by the closed-form estimate: their rates
 * scaled together (slots re-chosen at each scale) until the estimate stops serving them, `margin`
 * under the rule. Infinity for adapters that send nothing.
 */
export function capacityEstimate(
  ctx: PlacementContext,
  pieces: readonly Piece[],
  margin: number,
): number {
  const load = offeredOf(ctx, pieces);
  if (load <= 0) return Infinity;
  let lo = 0;
  let hi = 4;
  for (let i = 0; i < 12; i++) {
    const m = (lo + hi) / 2;
    const f = flagsFor(
      ctx,
      pieces.map((p) => ({ ...p, rate: p.rate * m })),
    );
    if (f && estimateServes(ctx, f.estimate, margin)) lo = m;
    else hi = m;
  }
  return load * lo;
}

export interface GpuVerdict {
  flags: VllmFlags;
  point: EvaluatedPoint;
  serves: boolean;
}

/** The twin's verdict on one GPU: its adapters' shares as the workload, its flags as the config. */
export async function judgeGpu(
  ctx: PlacementContext,
  pieces: readonly Piece[],
  flags: VllmFlags,
  durationSeconds: number,
  loadMultiplier = 1,
): Promise<GpuVerdict> {
  const scenario = scenarioSchema.parse({
    profile: ctx.profile.id,
    config: flags,
    workload: {
      adapters: pieces.map((p) => ({ rate: p.rate * loadMultiplier, rank: p.rank })),
      requestLengths: ctx.requestLengths,
    },
    durationSeconds,
    seed: 1,
  });
  const outcome = await ctx.simulate(scenario, ctx.profile, ctx.starvationThreshold);
  const point = evaluatedPoint(scenario, outcome, {
    ...(ctx.slo ? { slo: ctx.slo } : {}),
    ...(ctx.latencyModel ? { latencyModel: ctx.latencyModel } : {}),
  });
  return { flags, point, serves: servesObjective(point, ctx.objective) };
}

/** Whether a verdict fails on its p99 TTFT bound alone: more slots let requests wait less. */
function failsOnTtftAlone(ctx: PlacementContext, v: GpuVerdict): boolean {
  const { point } = v;
  const ttft = ctx.slo?.ttftP99Ms;
  const itl = ctx.slo?.itlP99Ms;
  return (
    !v.serves &&
    point.feasible &&
    !point.starving &&
    point.sloViolated &&
    point.latency !== undefined &&
    ttft !== undefined &&
    point.latency.ttftMs.p99.sloMs > ttft &&
    (itl === undefined || point.latency.itlMs.p99.sloMs <= itl)
  );
}

/**
 * The twin's verdict with the GPU's own flags, or a refusal when vLLM cannot start at all. The
 * estimate picks slots for throughput, and on a lightly loaded GPU it picks few: 20 adapters at
 * 0.05 req/s get 2 slots, whose requests wait for their adapter to a p99 TTFT of 38 s. Where
 * that alone breaks the SLO, more slots are tried before the adapters are split: the most the GPU
 * can use, then the fewest of the slot ladder between that still serve (bisected: waiting for a
 * slot only shrinks as slots are added).
 */
export async function judgePieces(
  ctx: PlacementContext,
  pieces: readonly Piece[],
  durationSeconds: number,
  options: { neighbourSlots?: boolean } = {},
): Promise<GpuVerdict | undefined> {
  const chosen = flagsFor(ctx, pieces);
  if (!chosen) return undefined;
  const first = await judgeGpu(ctx, pieces, chosen.flags, durationSeconds);
  if (!first.serves && !failsOnTtftAlone(ctx, first))
    return options.neighbourSlots
      ? ((await otherSlots(ctx, pieces, chosen, durationSeconds)) ?? first)
      : first;
  if (!failsOnTtftAlone(ctx, first)) return first;
  const { maxLoras, maxLoraRank } = chosen.flags;
  const more = startableSlots(ctx, pieces.length, maxLoraRank).filter((s) => s > maxLoras);
  if (more.length === 0) return first;
  const at = (slots: number) =>
    judgeGpu(ctx, pieces, { ...chosen.flags, maxLoras: slots }, durationSeconds);
  let best = await at(more[more.length - 1]!);
  if (!best.serves) return first;
  // more[hi] serves; find the fewest slots that do.
  let lo = -1;
  let hi = more.length - 1;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    const v = await at(more[mid]!);
    if (v.serves) {
      hi = mid;
      best = v;
    } else lo = mid;
  }
  return best;
}

/** The slot ladder up to one slot per adapter, where vLLM starts at this rank. */
function startableSlots(ctx: PlacementContext, adapters: number, maxLoraRank: number): number[] {
  return [...SLOT_LADDER.filter((s) => s < adapters), adapters].filter((s) =>
    vllmStarts(ctx.profile, s, maxLoraRank),
  );
}

/** Below the estimate's slot count, and above it: the neighbours tried when its choice fails. */
const NEIGHBOUR_SLOTS = { below: 1, above: 2 };

/**
 * When the estimate's slot count fails in the twin on a GPU the estimate says serves, its
 * neighbours on the slot ladder are tried (one below: more KV cache; two above: less waiting for a
 * slot), and the first that serves is kept. The estimate ranks slot counts well but places the
 * edge only to within a ladder step: 300 adapters at rank 64 starve on 8 slots in the twin and
 * serve on 16 or 32. Deterministic: the same pieces give the same flags, so a later verification
 * of the same GPU finds the same ones. Asked for by the merges and the verification (which must
 * find the flags a merge was kept with again), not by the packing probes, where most GPUs fail on
 * purpose and each would cost three more hour-long runs.
 */
async function otherSlots(
  ctx: PlacementContext,
  pieces: readonly Piece[],
  chosen: { flags: VllmFlags; estimate: GpuEstimate },
  durationSeconds: number,
): Promise<GpuVerdict | undefined> {
  if (!estimateServes(ctx, chosen.estimate, -ESTIMATE_SLACK)) return undefined;
  const { maxLoras, maxLoraRank } = chosen.flags;
  const ladder = startableSlots(ctx, pieces.length, maxLoraRank);
  const at = ladder.indexOf(maxLoras);
  if (at < 0) return undefined;
  const candidates = [
    ...ladder.slice(Math.max(0, at - NEIGHBOUR_SLOTS.below), at),
    ...ladder.slice(at + 1, at + 1 + NEIGHBOUR_SLOTS.above),
  ];
  // Side by side, the first in order that serves kept: the same flags as trying them in turn.
  const verdicts = await Promise.all(
    candidates.map((slots) =>
      judgeGpu(ctx, pieces, { ...chosen.flags, maxLoras: slots }, durationSeconds),
    ),
  );
  return verdicts.find((v) => v.serves);
}

/**
 * The estimate's completion is within about 0.01-0.05 of the twin's, mostly above it: a GPU is
 * worth a twin probe only when the estimate does not rule it out by more than this.
 */
export const ESTIMATE_SLACK = 0.01;

/**
 * Largest-first onto the least-loaded of `gpus` bins (longest processing time): balances load and
 * mixes hot and cold adapters on every GPU. A piece meeting another piece of its adapter merges
 * with it; a GPU never holds more than MAX_ADAPTERS_PER_GPU adapters. Deterministic.
 */
export function spreadLargestFirst(pieces: readonly Piece[], gpus: number): Piece[][] {
  const bins: Array<{ pieces: Map<string, Piece>; load: number }> = Array.from(
    { length: gpus },
    () => ({ pieces: new Map(), load: 0 }),
  );
  const order = [...pieces].sort((a, b) => b.rate - a.rate || (a.id < b.id ? -1 : 1));
  for (const piece of order) {
    let target = -1;
    for (let i = 0; i < bins.length; i++) {
      const bin = bins[i]!;
      if (bin.pieces.size >= MAX_ADAPTERS_PER_GPU && !bin.pieces.has(piece.id)) continue;
      if (target < 0 || bin.load < bins[target]!.load) target = i;
    }
    if (target < 0) target = 0; // every bin full: the caller asked for too few GPUs
    const bin = bins[target]!;
    const same = bin.pieces.get(piece.id);
    if (same) {
      same.rate += piece.rate;
      same.weight += piece.weight;
    } else bin.pieces.set(piece.id, { ...piece });
    bin.load += piece.rate;
  }
  return bins.map((b) => [...b.pieces.values()]);
}
