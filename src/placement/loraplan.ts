import { maxLoraRankFor } from '../search/index.js';
import { estimateGpu } from './estimate.js';
import {
  MAX_ADAPTERS_PER_GPU,
  VERIFY_SECONDS,
  estimateServes,
  flagsFor,
  judgeGpu,
  judgePieces,
  offeredOf,
  spreadLargestFirst,
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
): Promise<Array<GpuVerdict | undefined>> {
  return mapLimited(bins, PLACEMENT_CONCURRENCY, (pieces) => judgePieces(ctx, pieces, seconds));
}

const allServe = (verdicts: ReadonlyArray<GpuVerdict | undefined>) =>
  verdicts.every((v) => v?.serves === true);

/** Whether the closed-form estimate says every GPU serves, `margin` above the rule's share. */
function estimatedToServe(
  ctx: PlacementContext,
  pieces: readonly Piece[],
  gpus: number,
  margin: number,
): boolean {
  return spreadLargestFirst(pieces, gpus).every((b) => {
    const f = flagsFor(ctx, b);
    return f !== undefined && estimateServes(ctx, f.estimate, margin);
  });
}

/** Fewest GPUs the estimate says serve this group, with a margin, when spread largest-first. */
function estimatedGpus(ctx: PlacementContext, pieces: readonly Piece[], from: number): number {
  for (let k = from; k < pieces.length; k++) if (estimatedToServe(ctx, pieces, k, 0.02)) return k;
  return pieces.length;
}

/**
 * The estimate's completion is within about 0.01-0.05 of the twin's, mostly above it: one GPU
 * fewer is worth a twin probe only when the estimate does not rule it out by more than this.
 */
const PROBE_BELOW_ESTIMATE = 0.01;

/**
 * One rank group on the fewest GPUs the twin accepts: start at the estimate, then step down while
 * one-hour twin probes still serve every GPU (and the estimate leaves a chance they might), or up
 * until they do.
 */
async function packGroup(ctx: PlacementContext, pieces: readonly Piece[]): Promise<Piece[][]> {
  const distinct = new Set(pieces.map((p) => p.id)).size;
  const lower = Math.max(1, Math.ceil(distinct / MAX_ADAPTERS_PER_GPU));
  const upper = pieces.length;
  let k = estimatedGpus(ctx, pieces, lower);
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
    while (k > lower && worthProbing(k - 1) && (await probe(k - 1))) k--;
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

/**
 * Empties the lightest GPU into the others' spare room (by the estimate) while the twin's probes
 * still serve every GPU touched: this is where rank groups' part-filled GPUs merge.
 */
async function consolidate(ctx: PlacementContext, bins: Piece[][]): Promise<Piece[][]> {
  let current = bins.map((b) => [...b]);
  for (let attempt = 0; attempt < current.length && current.length > 1; attempt++) {
    const loads = current.map((b) => offeredOf(ctx, b));
    const lightest = loads.indexOf(Math.min(...loads));
    const others = current.filter((_, i) => i !== lightest).map((b) => [...b]);
    const spare = others.map((b) => {
      const f = flagsFor(ctx, b);
      if (!f) return 0;
      const saturated = estimateGpu(ctx.profile, ctx.lengths, {
        rates: b.map((p) => p.rate * 3),
        maxLoras: f.flags.maxLoras,
        maxLoraRank: f.flags.maxLoraRank,
      }).throughputTokensPerSecond;
      return saturated - offeredOf(ctx, b);
    });
    const tokens = ctx.lengths.prompt + ctx.lengths.output;
    const touched = new Set<number>();
    let fits = true;
    for (const piece of [...current[lightest]!].sort((a, b) => b.rate - a.rate)) {
      let target = -1;
      for (let i = 0; i < others.length; i++) {
        if (others[i]!.length >= MAX_ADAPTERS_PER_GPU) continue;
        if (others[i]!.some((p) => p.id === piece.id)) continue;
        if (target < 0 || spare[i]! > spare[target]!) target = i;
      }
      if (target < 0 || spare[target]! < piece.rate * tokens) {
        fits = false;
        break;
      }
      others[target]!.push(piece);
      spare[target]! -= piece.rate * tokens;
      touched.add(target);
    }
    if (!fits) break;
    const verdicts = await judgeAll(
      ctx,
      [...touched].map((i) => others[i]!),
      VERIFY_SECONDS,
    );
    if (!allServe(verdicts)) break;
    current = others;
  }
  return current;
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
  for (let round = 0; round < REPAIR_ROUNDS; round++) {
    const rescaled = reweight(current);
    const changed = rescaled
      .map((g, i) => ({ g, i }))
      .filter(({ g, i }) => g.pieces.some((p, j) => p.weight !== current[i]!.pieces[j]!.weight));
    if (changed.length === 0) return { gpus: rescaled, unplaced };
    const verdicts = await mapLimited(changed, PLACEMENT_CONCURRENCY, ({ g }) =>
      judgeGpu(ctx, g.pieces, g.verdict.flags, VERIFY_SECONDS),
    );
    const failing = new Set<number>();
    changed.forEach(({ g, i }, k) => {
      if (verdicts[k]!.serves) rescaled[i] = { ...g, verdict: verdicts[k]! };
      else failing.add(i);
    });
    current = rescaled.filter((_, i) => !failing.has(i));
    const kept = new Set(current.flatMap((g) => g.pieces.map((p) => p.id)));
    const lost = rescaled.filter((_, i) => failing.has(i)).flatMap((g) => g.pieces);
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
