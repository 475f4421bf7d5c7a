import { maxLoraRankFor } from '../search/index.js';
import { estimateGpu } from '../search/estimate.js';
import { nextTurn } from './turns.js';
import {
  MAX_ADAPTERS_PER_GPU,
  VERIFY_SECONDS,
  estimateServes,
  flagsFor,
  judgeGpu,
  judgePieces,
  offeredOf,
  spreadLargestFirst,
  ESTIMATE_SLACK,
  type CatalogAdapter,
  type GpuVerdict,
  type Piece,
  type PlacementContext,
} from './gpu.js';

export interface PlacedGpu {
  pieces: Piece[];
  verdict: GpuVerdict;
  /** Index of the bin it came from (repairs keep it); undefined for a GPU a repair opened. */
  origin?: number;
}

export interface Unplaced {
  id: string;
  rate: number;
  rank: number;
  reason: string;
}

export interface PlanOutcome {
  gpus: PlacedGpu[];
  unplaced: Unplaced[];
}

/** A piece larger than this share of one GPU's capacity is split across GPUs. */
const HOT_SHARE = 0.5;
/** Repair rounds after the one-hour verification before a GPU's adapters are given up on. */
const REPAIR_ROUNDS = 4;
/** Share of a failing GPU's load moved to a new GPU per repair round. */
const REPAIR_SHED = 0.2;
/** Simulations in flight at once from one placement: keeps the pool's queue bounded. */
export const PLACEMENT_CONCURRENCY = 64;

/** Runs `fn` over `items` with at most `limit` in flight; results in input order. */
export async function mapLimited<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      // Each item starts with closed-form work: one item a turn keeps the server responsive.
      await nextTurn();
      results[i] = await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

/** Saturated throughput of a GPU serving one adapter of this rank in one slot (the estimate). */
export function singleAdapterCapacity(ctx: PlacementContext, rank: number): number {
  const maxLoraRank = maxLoraRankFor(ctx.profile, [rank]);
  return estimateGpu(ctx.profile, ctx.lengths, {
    rates: [1e6 / (ctx.lengths.prompt + ctx.lengths.output)],
    maxLoras: 1,
    maxLoraRank,
  }).throughputTokensPerSecond;
}

/** Whether an adapter's own load is over HOT_SHARE of one GPU: placement splits such adapters. */
export function isHot(ctx: PlacementContext, adapter: CatalogAdapter): boolean {
  const tokens = ctx.lengths.prompt + ctx.lengths.output;
  return adapter.rate * tokens > HOT_SHARE * singleAdapterCapacity(ctx, adapter.rank);
}

/**
 * Adapters as pieces: an adapter whose load exceeds half a GPU is split into equal replicas, each
 * at most half a GPU, so it never starves a GPU alone and never crowds out the cold adapters
 * sharing a GPU with it. The router sends each replica its weight of the traffic.
 */
export function piecesOf(ctx: PlacementContext, catalog: readonly CatalogAdapter[]): Piece[] {
  const tokens = ctx.lengths.prompt + ctx.lengths.output;
  const capacityByRank = new Map<number, number>();
  const pieces: Piece[] = [];
  for (const a of catalog) {
    let capacity = capacityByRank.get(a.rank);
    if (capacity === undefined) {
      capacity = singleAdapterCapacity(ctx, a.rank);
      capacityByRank.set(a.rank, capacity);
    }
    const replicas = Math.max(1, Math.ceil((a.rate * tokens) / (HOT_SHARE * capacity)));
    for (let i = 0; i < replicas; i++)
      pieces.push({ id: a.id, rank: a.rank, rate: a.rate / replicas, weight: 1 / replicas });
  }
  return pieces;
}

/** Pieces grouped by the --max-lora-rank vLLM would be started with for them alone. */
export function byMaxLoraRank(ctx: PlacementContext, pieces: readonly Piece[]) {
  const groups = new Map<number, Piece[]>();
  for (const piece of pieces) {
    const rank = maxLoraRankFor(ctx.profile, [piece.rank]);
    const group = groups.get(rank);
    if (group) group.push(piece);
    else groups.set(rank, [piece]);
  }
  return groups;
}

/** Every GPU's verdict from the twin; undefined where vLLM cannot start. */
async function judgeAll(
  ctx: PlacementContext,
  bins: readonly Piece[][],
  seconds: number,
  options: { neighbourSlots?: boolean } = {},
): Promise<Array<GpuVerdict | undefined>> {
  return mapLimited(bins, PLACEMENT_CONCURRENCY, (pieces) =>
    judgePieces(ctx, pieces, seconds, options),
  );
}

/** Merges and verification try the slot ladder's neighbours (gpu.ts, otherSlots). */
const FINAL = { neighbourSlots: true } as const;

const allServe = (verdicts: ReadonlyArray<GpuVerdict | undefined>) =>
  verdicts.every((v) => v?.serves === true);

/** Whether the closed-form estimate says every GPU serves, `margin` above the rule's share. */
async function estimatedToServe(
  ctx: PlacementContext,
  pieces: readonly Piece[],
  gpus: number,
  margin: number,
): Promise<boolean> {
  for (const bin of spreadLargestFirst(pieces, gpus)) {
    // A GPU's slot choice estimates each ladder step over all its adapters: one GPU a turn.
    await nextTurn();
    const f = flagsFor(ctx, bin);
    if (f === undefined || !estimateServes(ctx, f.estimate, margin)) return false;
  }
  return true;
}

/** Fewest GPUs the estimate says serve this group, with a margin, when spread largest-first. */
async function estimatedGpus(
  ctx: PlacementContext,
  pieces: readonly Piece[],
  from: number,
): Promise<number> {
  for (let k = from; k < pieces.length; k++)
    if (await estimatedToServe(ctx, pieces, k, 0.02)) return k;
  return pieces.length;
}

/** One GPU fewer is worth a twin probe only when the estimate does not rule it out (gpu.ts). */
const PROBE_BELOW_ESTIMATE = ESTIMATE_SLACK;

/**
 * One rank group on the fewest GPUs the twin accepts: start at the estimate, then step down while
 * one-hour twin probes still serve every GPU (and the estimate leaves a chance they might), or up
 * until they do.
 */
async function packGroup(ctx: PlacementContext, pieces: readonly Piece[]): Promise<Piece[][]> {
  const distinct = new Set(pieces.map((p) => p.id)).size;
  const lower = Math.max(1, Math.ceil(distinct / MAX_ADAPTERS_PER_GPU));
  const upper = pieces.length;
  let k = await estimatedGpus(ctx, pieces, lower);
  const tried = new Map<number, boolean>();
  const probe = async (gpus: number) => {
    let ok = tried.get(gpus);
    if (ok === undefined) {
      ok = allServe(await judgeAll(ctx, spreadLargestFirst(pieces, gpus), VERIFY_SECONDS));
      tried.set(gpus, ok);
    }
    return ok;
  };
  const worthProbing = (gpus: number) => estimatedToServe(ctx, pieces, gpus, -PROBE_BELOW_ESTIMATE);
  if (await probe(k)) {
    while (k > lower && (await worthProbing(k - 1)) && (await probe(k - 1))) k--;
  } else {
    // Step up geometrically, then back down to the first count that serves.
    let step = 1;
    let bad = k;
    while (k < upper && !(await probe(k))) {
      bad = k;
      k = Math.min(upper, k + step);
      step *= 2;
    }
    while (k - 1 > bad && (await probe(k - 1))) k--;
  }
  return spreadLargestFirst(pieces, k);
}

/** Twin probes one GPU's merge may spend on other GPUs before the merging stops. */
const MERGE_PROBES = 3;

/** Two GPUs' pieces as one: replicas of one adapter meeting on it become one piece. */
export function unionOf(a: readonly Piece[], b: readonly Piece[]): Piece[] {
  const byId = new Map(a.map((p) => [p.id, { ...p }]));
  for (const p of b) {
    const same = byId.get(p.id);
    if (same) {
      same.rate += p.rate;
      same.weight += p.weight;
    } else byId.set(p.id, { ...p });
  }
  return [...byId.values()];
}

/** Whether the estimate leaves a chance that one GPU holding `pieces` serves. */
function mayServe(ctx: PlacementContext, pieces: readonly Piece[]): boolean {
  if (new Set(pieces.map((p) => p.id)).size > MAX_ADAPTERS_PER_GPU) return false;
  const f = flagsFor(ctx, pieces);
  return f !== undefined && estimateServes(ctx, f.estimate, -PROBE_BELOW_ESTIMATE);
}

/**
 * Fewer GPUs where the twin backs it. The lightest GPU is merged whole into another (lightest
 * first, at the --max-lora-rank the union needs, so rank groups merge), or else emptied into the
 * others' room, each piece where the closed-form capacity at the union's rank leaves the most;
 * a merge is kept only when the twin serves every GPU it touched, and the merging goes on until
 * the lightest GPU finds no home.
 */
async function consolidate(ctx: PlacementContext, bins: Piece[][]): Promise<Piece[][]> {
  let current = bins.map((b) => [...b]);
  while (current.length > 1) {
    const order = current
      .map((b, i) => ({ i, load: offeredOf(ctx, b) }))
      .sort((a, b) => a.load - b.load || a.i - b.i);
    const lightest = order[0]!.i;
    const merged = await mergeWhole(
      ctx,
      current,
      lightest,
      order.slice(1).map((o) => o.i),
    );
    if (merged) {
      current = merged;
      continue;
    }
    const spread = await emptyInto(ctx, current, lightest);
    if (!spread) break;
    current = spread;
  }
  return current;
}

/** The lightest GPU merged whole into the first of `targets` the twin serves the union on. */
async function mergeWhole(
  ctx: PlacementContext,
  bins: Piece[][],
  lightest: number,
  targets: readonly number[],
): Promise<Piece[][] | undefined> {
  const candidates: Array<{ target: number; union: Piece[] }> = [];
  for (const target of targets) {
    if (candidates.length >= MERGE_PROBES) break;
    const union = unionOf(bins[target]!, bins[lightest]!);
    await nextTurn();
    if (mayServe(ctx, union)) candidates.push({ target, union });
  }
  // The candidates are judged side by side and the first in order that serves is kept: the same
  // merge as judging them one by one, in the time of the slowest rather than the sum.
  const verdicts = await Promise.all(
    candidates.map(({ union }) => judgePieces(ctx, union, VERIFY_SECONDS, FINAL)),
  );
  const kept = candidates.find((_, k) => verdicts[k]?.serves);
  if (!kept) return undefined;
  return bins.flatMap((b, i) => (i === lightest ? [] : i === kept.target ? [kept.union] : [b]));
}

/** The lightest GPU's pieces spread over the others' room, or undefined where it does not fit. */
async function emptyInto(
  ctx: PlacementContext,
  bins: Piece[][],
  lightest: number,
): Promise<Piece[][] | undefined> {
  const others = bins.filter((_, i) => i !== lightest).map((b) => [...b]);
  const moving = bins[lightest]!;
  const unionRank = (b: readonly Piece[]) =>
    maxLoraRankFor(
      ctx.profile,
      [...b, ...moving].map((p) => p.rank),
    );
  const spare: number[] = [];
  for (const b of others) {
    // A GPU's slot choice is estimated over all its adapters: one GPU a turn.
    await nextTurn();
    const f = flagsFor(ctx, b);
    if (!f) {
      spare.push(0);
      continue;
    }
    // The room left at the rank the GPU would run at once it takes the lightest GPU's ranks.
    const saturated = estimateGpu(ctx.profile, ctx.lengths, {
      rates: b.map((p) => p.rate * 3),
      maxLoras: f.flags.maxLoras,
      maxLoraRank: Math.max(f.flags.maxLoraRank, unionRank(b)),
    }).throughputTokensPerSecond;
    spare.push(saturated - offeredOf(ctx, b));
  }
  const tokens = ctx.lengths.prompt + ctx.lengths.output;
  const touched = new Set<number>();
  for (const piece of [...moving].sort((a, b) => b.rate - a.rate)) {
    let target = -1;
    for (let i = 0; i < others.length; i++) {
      if (others[i]!.length >= MAX_ADAPTERS_PER_GPU) continue;
      if (others[i]!.some((p) => p.id === piece.id)) continue;
      if (target < 0 || spare[i]! > spare[target]!) target = i;
    }
    if (target < 0 || spare[target]! < piece.rate * tokens) return undefined;
    others[target]!.push(piece);
    spare[target]! -= piece.rate * tokens;
    touched.add(target);
  }
  const verdicts = await judgeAll(
    ctx,
    [...touched].map((i) => others[i]!),
    VERIFY_SECONDS,
  );
  return allServe(verdicts) ? others : undefined;
}

/**
 * Verifies every GPU with one-hour twin runs. A GPU that fails sheds a fifth of its load (its
 * coldest adapters first: they are the ones waiting for slots) to new GPUs, which are verified in
 * turn; after REPAIR_ROUNDS, what still fails is reported unplaced rather than as a starving GPU.
 */
export async function verifyAndRepair(
  ctx: PlacementContext,
  bins: Piece[][],
): Promise<{ gpus: PlacedGpu[]; failed: Piece[] }> {
  const gpus: PlacedGpu[] = [];
  let pending: Array<{ pieces: Piece[]; origin?: number }> = bins
    .map((pieces, origin) => ({ pieces, origin }))
    .filter((b) => b.pieces.length > 0);
  const failed: Piece[] = [];
  for (let round = 0; round <= REPAIR_ROUNDS && pending.length > 0; round++) {
    const verdicts = await judgeAll(
      ctx,
      pending.map((b) => b.pieces),
      VERIFY_SECONDS,
      FINAL,
    );
    const shed: Piece[] = [];
    const next: typeof pending = [];
    pending.forEach((bin, i) => {
      const verdict = verdicts[i];
      if (verdict?.serves) {
        gpus.push({ ...bin, verdict });
        return;
      }
      if (round === REPAIR_ROUNDS || bin.pieces.length === 1) {
        failed.push(...bin.pieces);
        return;
      }
      const byRate = [...bin.pieces].sort((a, b) => a.rate - b.rate);
      const target = REPAIR_SHED * bin.pieces.reduce((s, p) => s + p.rate, 0);
      let moved = 0;
      const keep: Piece[] = [];
      for (const p of byRate) {
        if (moved < target && p !== byRate[byRate.length - 1]) {
          shed.push(p);
          moved += p.rate;
        } else keep.push(p);
      }
      next.push({ ...bin, pieces: keep });
    });
    if (shed.length > 0) {
      const load = offeredOf(ctx, shed);
      const perGpu = Math.max(...next.map((b) => offeredOf(ctx, b.pieces)), 1);
      for (const pieces of spreadLargestFirst(shed, Math.max(1, Math.ceil(load / perGpu))))
        next.push({ pieces });
    }
    pending = next.filter((b) => b.pieces.length > 0);
  }
  const order = (g: PlacedGpu) => g.origin ?? Number.MAX_SAFE_INTEGER;
  return { gpus: gpus.sort((a, b) => order(a) - order(b)), failed };
}

/** Pieces of one adapter gathered back: what is reported unplaced. */
export function unplacedOf(
  pieces: readonly Piece[],
  catalog: ReadonlyMap<string, CatalogAdapter>,
  reason: string,
): Unplaced[] {
  const ids = [...new Set(pieces.map((p) => p.id))];
  return ids.map((id) => {
    const a = catalog.get(id)!;
    return { id, rate: a.rate, rank: a.rank, reason };
  });
}

/**
 * loraplan's placement: hot adapters split into replicas; each rank group on its own GPUs (a GPU
 * of rank-8 adapters keeps the KV cache that rank-32 slots would take), spread largest-first so
 * every GPU mixes hot and cold adapters; the GPU count of each group set by twin probes from the
 * closed-form estimate; part-filled GPUs merged across groups; every GPU verified by the twin and
 * repaired until it serves. Within a GPU budget, the lightest GPUs' adapters are left unplaced.
 */
export async function placeLoraplan(
  ctx: PlacementContext,
  catalog: readonly CatalogAdapter[],
  options: { gpuBudget?: number } = {},
): Promise<PlanOutcome> {
  await nextTurn();
  const byId = new Map(catalog.map((a) => [a.id, a]));
  const groups = byMaxLoraRank(ctx, piecesOf(ctx, catalog));
  // Groups pack at once: each probe round of one group is a few simulations, together they fill
  // the pool.
  const ranks = [...groups.keys()].sort((a, b) => b - a);
  const packed = await Promise.all(ranks.map((rank) => packGroup(ctx, groups.get(rank)!)));
  const bins: Piece[][] = packed.flat();
  let merged = await consolidate(ctx, bins);
  const unplaced: Unplaced[] = [];
  if (options.gpuBudget !== undefined && merged.length > options.gpuBudget) {
    // Keep the most loaded GPUs: the budget serves as much of the traffic as it can.
    const order = merged
      .map((b, i) => ({ i, load: offeredOf(ctx, b) }))
      .sort((a, b) => b.load - a.load || a.i - b.i);
    const kept = new Set(order.slice(0, options.gpuBudget).map((o) => o.i));
    const dropped = merged.filter((_, i) => !kept.has(i)).flat();
    merged = merged.filter((_, i) => kept.has(i));
    const keptIds = new Set(merged.flat().map((p) => p.id));
    unplaced.push(
      ...unplacedOf(
        dropped.filter((p) => !keptIds.has(p.id)),
        byId,
        budgetReason(options.gpuBudget),
      ),
    );
    // A replicated adapter that lost some replicas keeps the rest, reweighted by settle.
  }
  const { gpus, failed } = await verifyAndRepair(ctx, merged);
  const placedIds = new Set(gpus.flatMap((g) => g.pieces.map((p) => p.id)));
  unplaced.push(
    ...unplacedOf(
      failed.filter((p) => !placedIds.has(p.id)),
      byId,
      'no GPU holding it passed the one-hour twin verification after repairs',
    ),
  );
  // Repairs may have opened GPUs beyond the budget.
  return withinBudget(ctx, await settle(ctx, gpus, unplaced, byId), options.gpuBudget, byId);
}

const budgetReason = (budget: number) =>
  `the GPU budget of ${budget} is spent: serving this adapter needs more GPUs`;

/**
 * Over budget: keep the most loaded verified GPUs (the budget serves as much traffic as it can),
 * in their order; what only the others held is unplaced, and replicas left behind take their
 * siblings' traffic (settle re-verifies them).
 */
export async function withinBudget(
  ctx: PlacementContext,
  plan: PlanOutcome,
  budget: number | undefined,
  catalog: ReadonlyMap<string, CatalogAdapter>,
): Promise<PlanOutcome> {
  if (budget === undefined || plan.gpus.length <= budget) return plan;
  const kept = new Set(
    [...plan.gpus]
      .sort(
        (a, b) => b.verdict.point.offeredTokensPerSecond - a.verdict.point.offeredTokensPerSecond,
      )
      .slice(0, budget),
  );
  const keptIds = new Set([...kept].flatMap((g) => g.pieces.map((p) => p.id)));
  const dropped = plan.gpus.filter((g) => !kept.has(g)).flatMap((g) => g.pieces);
  const unplaced = [
    ...plan.unplaced,
    ...unplacedOf(
      dropped.filter((p) => !keptIds.has(p.id)),
      catalog,
      budgetReason(budget),
    ),
  ];
  return settle(
    ctx,
    plan.gpus.filter((g) => kept.has(g)),
    unplaced,
    catalog,
  );
}

/**
 * Rescales replicas whose siblings were dropped (by the budget or by repair), re-verifies every GPU
 * whose traffic that changed, and drops what then fails, until nothing changes: no GPU in an
 * answer carries traffic the twin did not verify.
 */
export async function settle(
  ctx: PlacementContext,
  gpus: PlacedGpu[],
  unplaced: Unplaced[],
  catalog: ReadonlyMap<string, CatalogAdapter>,
): Promise<PlanOutcome> {
  let current = gpus;
  // GPUs that gave up adapters since their last verdict: their flags are chosen again.
  let stripped = new Set<number>();
  for (let round = 0; round < 3 * REPAIR_ROUNDS; round++) {
    const rescaled = reweight(current);
    const weightChanged = (i: number) =>
      rescaled[i]!.pieces.filter((p, j) => p.weight !== current[i]!.pieces[j]!.weight);
    const changed = rescaled
      .map((g, i) => ({ g, i }))
      .filter(({ i }) => stripped.has(i) || weightChanged(i).length > 0);
    if (changed.length === 0) return { gpus: rescaled, unplaced };
    const verdicts = await mapLimited(changed, PLACEMENT_CONCURRENCY, ({ g, i }) =>
      stripped.has(i)
        ? judgePieces(ctx, g.pieces, VERIFY_SECONDS, FINAL)
        : judgeGpu(ctx, g.pieces, g.verdict.flags, VERIFY_SECONDS),
    );
    const next: PlacedGpu[] = [];
    const nextStripped = new Set<number>();
    const lost: Piece[] = [];
    const outcome = new Map<number, { verdict?: GpuVerdict; keep?: Piece[] }>();
    changed.forEach(({ i }, k) => {
      const verdict = verdicts[k];
      if (verdict?.serves) {
        outcome.set(i, { verdict });
        return;
      }
      // A GPU that fails only because replicas it holds took their dropped siblings' traffic
      // gives those adapters up and keeps the rest: a budget of one keeps one GPU, not none.
      const grown = new Set(weightChanged(i).map((p) => p.id));
      const keep = current[i]!.pieces.filter((p) => !grown.has(p.id));
      if (grown.size > 0 && keep.length > 0) {
        outcome.set(i, { keep });
        lost.push(...rescaled[i]!.pieces.filter((p) => grown.has(p.id)));
      } else {
        outcome.set(i, {});
        lost.push(...rescaled[i]!.pieces);
      }
    });
    rescaled.forEach((g, i) => {
      const o = outcome.get(i);
      if (!o) next.push(g);
      else if (o.verdict) next.push({ ...g, verdict: o.verdict });
      else if (o.keep) {
        nextStripped.add(next.length);
        next.push({ ...current[i]!, pieces: o.keep });
      }
    });
    current = next;
    stripped = nextStripped;
    const kept = new Set(current.flatMap((g) => g.pieces.map((p) => p.id)));
    unplaced.push(
      ...unplacedOf(
        lost.filter((p) => !kept.has(p.id)),
        catalog,
        'its remaining replicas could not take its traffic in the twin',
      ),
    );
  }
  return { gpus: reweight(current), unplaced };
}

/**
 * Weights of each adapter's surviving replicas rescaled to sum to 1 (a replica dropped by the
 * budget or by repair hands its traffic to the others); each GPU's rates follow.
 */
export function reweight(gpus: PlacedGpu[]): PlacedGpu[] {
  const total = new Map<string, number>();
  for (const g of gpus)
    for (const p of g.pieces) total.set(p.id, (total.get(p.id) ?? 0) + p.weight);
  return gpus.map((g) => ({
    ...g,
    pieces: g.pieces.map((p) => {
      const sum = total.get(p.id)!;
      return Math.abs(sum - 1) < 1e-12
        ? p
        : { ...p, weight: p.weight / sum, rate: (p.rate / p.weight) * (p.weight / sum) };
    }),
  }));
}
