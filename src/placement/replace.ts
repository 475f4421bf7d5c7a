import {
  MAX_ADAPTERS_PER_GPU,
  CAPACITY_MARGIN,
  capacityEstimate,
  VERIFY_SECONDS,
  offeredOf,
  judgePieces,
  type CatalogAdapter,
  type Piece,
  type PlacementContext,
} from './gpu.js';
import {
  PLACEMENT_CONCURRENCY,
  mapLimited,
  piecesOf,
  settle,
  unionOf,
  unplacedOf,
  verifyAndRepair,
  type PlanOutcome,
} from './loraplan.js';
import { nextTurn } from './turns.js';

/** The placement running now: per GPU, adapter ids with their traffic weights (1 when whole). */
export type CurrentPlacement = ReadonlyArray<ReadonlyArray<{ id: string; weight: number }>>;

/**
 * Re-placement after traffic shifts, moving few adapters: each current GPU keeps its adapters at
 * their new rates; a GPU now over what the closed-form estimate says it serves sheds the fewest
 * adapters that cover its excess, and the twin probe sheds more where it still fails. Shed and new
 * adapters go where the most room is, then onto new GPUs. While the answer uses more than one GPU
 * beyond the fresh placement, the two lightest GPUs merge (if the twin serves the result) or the
 * lightest is emptied into the others' room. Every GPU is then verified and repaired as in a
 * fresh placement.
 */
export async function replace(
  ctx: PlacementContext,
  catalog: readonly CatalogAdapter[],
  current: CurrentPlacement,
  fresh: PlanOutcome,
): Promise<PlanOutcome> {
  const byId = new Map(catalog.map((a) => [a.id, a]));
  /**
   * The most load a GPU holding these adapters serves by the closed-form estimate (its mix scaled
   * up or down, slots re-chosen), a little under the rule: where adapters may go without a move
   * the twin would undo. The twin's probes judge the result.
   */
  const capacityCache = new Map<Piece[], { length: number; load: number; capacity: number }>();
  const estimatedCapacity = (pieces: readonly Piece[]) =>
    capacityEstimate(ctx, pieces, CAPACITY_MARGIN);
  const capacityOf = (bin: Piece[]) => {
    const load = offeredOf(ctx, bin);
    const hit = capacityCache.get(bin);
    if (hit && hit.length === bin.length && hit.load === load) return hit.capacity;
    const capacity = estimatedCapacity(bin);
    capacityCache.set(bin, { length: bin.length, load, capacity });
    return capacity;
  };

  // Current GPUs at the new rates; adapters no longer in the catalog drop out.
  const bins: Piece[][] = current.map((gpu) => {
    const weights = new Map<string, number>();
    for (const { id, weight } of gpu)
      if (byId.has(id)) weights.set(id, (weights.get(id) ?? 0) + weight);
    return [...weights].map(([id, weight]) => {
      const a = byId.get(id)!;
      return { id, rank: a.rank, rate: a.rate * weight, weight };
    });
  });
  // Weights of an adapter's replicas sum to 1 again (a replica may have been dropped).
  const weightSum = new Map<string, number>();
  for (const b of bins)
    for (const p of b) weightSum.set(p.id, (weightSum.get(p.id) ?? 0) + p.weight);
  for (const b of bins)
    for (const p of b) {
      const sum = weightSum.get(p.id)!;
      p.weight /= sum;
      p.rate /= sum;
    }
  await nextTurn();
  const queue: Piece[] = piecesOf(
    ctx,
    catalog.filter((a) => !weightSum.has(a.id)),
  );
  /**
   * Brings a GPU's load down to `limit` with the fewest moves: the smallest adapter that alone
   * covers the excess, or else the largest ones below it until the excess is covered.
   */
  const shedTo = (bin: Piece[], limit: number) => {
    const tokens = ctx.lengths.prompt + ctx.lengths.output;
    let excess = offeredOf(ctx, bin) - limit;
    while (excess > 0 && bin.length > 1) {
      const byRate = [...bin].sort((a, b) => a.rate - b.rate);
      const covering = byRate.find((p) => p.rate * tokens >= excess);
      const pick = covering ?? byRate[byRate.length - 1]!;
      bin.splice(bin.indexOf(pick), 1);
      queue.push(pick);
      excess -= pick.rate * tokens;
    }
  };
  for (const bin of bins) {
    // One GPU's capacity a turn: each is a bisection over estimates of hundreds of adapters.
    await nextTurn();
    if (bin.length > 0) shedTo(bin, capacityOf(bin));
  }

  const probe = async (indices: number[]) => {
    const verdicts = await mapLimited(indices, PLACEMENT_CONCURRENCY, (i) =>
      judgePieces(ctx, bins[i]!, VERIFY_SECONDS),
    );
    return indices.filter((_, k) => !verdicts[k]?.serves);
  };
  const tokens = ctx.lengths.prompt + ctx.lengths.output;
  /** Queued pieces into the most room; `closed` GPUs take none (one being emptied). */
  const placeQueue = async (closed?: number) => {
    const touched = new Set<number>();
    for (const piece of queue.splice(0).sort((a, b) => b.rate - a.rate)) {
      // A bin that took a piece is estimated anew: one piece a turn.
      await nextTurn();
      let target = -1;
      let best = -Infinity;
      for (let i = 0; i < bins.length; i++) {
        const bin = bins[i]!;
        if (i === closed || bin.length === 0) continue;
        if (bin.length >= MAX_ADAPTERS_PER_GPU || bin.some((p) => p.id === piece.id)) continue;
        const room = capacityOf(bin) - offeredOf(ctx, bin) - piece.rate * tokens;
        if (room >= 0 && room > best) {
          best = room;
          target = i;
        }
      }
      if (target < 0) {
        bins.push([]);
        target = bins.length - 1;
      }
      bins[target]!.push(piece);
      touched.add(target);
    }
    return [...touched];
  };

  let suspects = await probe(bins.map((_, i) => i).filter((i) => bins[i]!.length > 0));
  for (let round = 0; round < 3 && (suspects.length > 0 || queue.length > 0); round++) {
    for (const i of suspects) shedTo(bins[i]!, 0.9 * offeredOf(ctx, bins[i]!));
    const touched = new Set([...suspects, ...(await placeQueue())]);
    suspects = await probe([...touched].filter((i) => bins[i]!.length > 0));
  }

  // At most one GPU beyond the fresh placement: merge the two lightest GPUs while the twin serves
  // the merged one, then empty the lightest into the others' room.
  const limit = fresh.gpus.length + 1;
  const open = () => bins.map((b, i) => i).filter((i) => bins[i]!.length > 0);
  while (open().length > limit) {
    const [a, b] = open().sort((x, y) => offeredOf(ctx, bins[x]!) - offeredOf(ctx, bins[y]!));
    const merged = unionOf(bins[b!]!, bins[a!]!);
    await nextTurn();
    if (merged.length > MAX_ADAPTERS_PER_GPU || estimatedCapacity(merged) < offeredOf(ctx, merged))
      break;
    const verdict = await judgePieces(ctx, merged, VERIFY_SECONDS, { neighbourSlots: true });
    if (!verdict?.serves) break;
    bins[b!] = merged;
    bins[a!] = [];
  }
  while (open().length > limit) {
    const loads = bins.map((b, i) => ({ i, load: b.length > 0 ? offeredOf(ctx, b) : Infinity }));
    const lightest = loads.reduce((m, l) => (l.load < m.load ? l : m)).i;
    const saved = bins.map((b) => [...b]);
    queue.push(...bins[lightest]!.splice(0));
    const touched = await placeQueue(lightest);
    if (
      touched.some((i) => i >= saved.length || saved[i]!.length === 0) ||
      (await probe(touched)).length > 0
    ) {
      bins.splice(0, bins.length, ...saved);
      break;
    }
  }

  const { gpus, failed } = await verifyAndRepair(ctx, bins);
  const kept = new Set(gpus.flatMap((g) => g.pieces.map((p) => p.id)));
  const unplaced = unplacedOf(
    failed.filter((p) => !kept.has(p.id)),
    byId,
    'no GPU holding it passed the one-hour twin verification after repairs',
  );
  return settle(ctx, gpus, unplaced, byId);
}
