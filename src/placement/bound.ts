import { LIMITS } from '../twin/index.js';
import { maxLoraRankFor, searchOptimum } from '../search/index.js';
import {
  MAX_ADAPTERS_PER_GPU,
  PROBE_SECONDS,
  type CatalogAdapter,
  type Piece,
  type PlacementContext,
} from './gpu.js';
import { piecesOf } from './loraplan.js';

export interface LowerBound {
  /** No placement that serves the catalog uses fewer GPUs (as far as the twin can tell). */
  gpus: number;
  /** Sum over rank groups of offered load / the best single-GPU throughput for that group. */
  loadBound: number;
  /** Adapters / the most one GPU holds. */
  countBound: number;
  bestGpuByRank: Array<{ maxLoraRank: number; throughputTokensPerSecond: number }>;
}

/**
 * A lower bound on the GPUs any placement needs: the catalog's offered load over the best
 * single-GPU throughput the twin finds for its rank mix. Each rank group's best GPU is the most
 * tokens/s any pair completed in the optimum search over (adapters, slots) on that group's adapters
 * (hot ones as replicas; ten-minute windows) (sampled evenly when more than a
 * search takes), so the bound knows that many cold adapters need slots as well as tokens. A GPU
 * mixing ranks runs at the higher rank, which only lowers its throughput, so summing the groups'
 * fractions stays a bound. Under the published rule a GPU may also leave up to the starvation
 * threshold of its load unserved; the bound, like the placement, counts load to be completed.
 */
export async function lowerBound(
  ctx: PlacementContext,
  catalog: readonly CatalogAdapter[],
): Promise<LowerBound> {
  const tokens = ctx.lengths.prompt + ctx.lengths.output;
  // Adapters hotter than half a GPU count as their replicas, as any placement must split them.
  const groups = new Map<number, Piece[]>();
  for (const piece of piecesOf(ctx, catalog)) {
    const rank = maxLoraRankFor(ctx.profile, [piece.rank]);
    groups.set(rank, [...(groups.get(rank) ?? []), piece]);
  }
  const ranks = [...groups.keys()].sort((a, b) => a - b);
  const best = await Promise.all(
    ranks.map(async (rank) => {
      const members = groups.get(rank)!;
      const take = Math.min(members.length, LIMITS.maxGroups);
      const sample = Array.from(
        { length: take },
        (_, i) => members[Math.floor((i * members.length) / take)]!,
      );
      const result = await searchOptimum(
        ctx.profile,
        {
          workload: {
            rates: sample.map((a) => a.rate),
            ranks: sample.map(() => rank),
            requestLengths: ctx.requestLengths,
          },
          starvationThreshold: ctx.starvationThreshold,
          durationSeconds: PROBE_SECONDS,
        },
        ctx.simulate,
      );
      // The most any simulated pair completed, starving or not: an overloaded pair shows what the
      // GPU can complete at most, which is what bounds the GPU count.
      const throughput = Math.max(
        0,
        ...result.evaluated.filter((e) => e.simulated).map((e) => e.throughputTokensPerSecond),
      );
      return { maxLoraRank: rank, throughputTokensPerSecond: throughput };
    }),
  );
  let loadBound = 0;
  for (const b of best) {
    const offered = groups.get(b.maxLoraRank)!.reduce((s, a) => s + a.rate, 0) * tokens;
    if (b.throughputTokensPerSecond > 0) loadBound += offered / b.throughputTokensPerSecond;
  }
  const countBound = catalog.length / MAX_ADAPTERS_PER_GPU;
  return {
    gpus: Math.max(1, Math.ceil(Math.max(loadBound, countBound) - 1e-9)),
    loadBound,
    countBound,
    bestGpuByRank: best,
  };
}
