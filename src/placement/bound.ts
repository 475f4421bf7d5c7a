import { LIMITS } from '../twin/index.js';
import { scenarioFor, searchOptimum } from '../search/index.js';
import {
  MAX_ADAPTERS_PER_GPU,
  SEARCH_SECONDS,
  VERIFY_SECONDS,
  type CatalogAdapter,
  requiredCompletion,
  type PlacementContext,
} from './gpu.js';
import { byMaxLoraRank, piecesOf } from './loraplan.js';

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
 * (hot ones as replicas; the search in ten-minute windows, its best re-run for an hour) (sampled evenly when more than a
 * search takes), so the bound knows that many cold adapters need slots as well as tokens. A GPU
 * mixing ranks runs at the higher rank, which only lowers its throughput, so summing the groups'
 * fractions stays a bound. A GPU that serves completes at least 1 - starvationThreshold of its load
 * (0.99 for the stable objective), so that share of the offered load is what must be completed.
 */
/** The bound's search grid: powers of two, since overloaded pairs count too. */
const BOUND_GRID = {
  concurrent: [8, 16, 32, 64, 128, 256, 512],
  parallel: [8, 16, 32, 64, 128],
};

export async function lowerBound(
  ctx: PlacementContext,
  catalog: readonly CatalogAdapter[],
): Promise<LowerBound> {
  const tokens = ctx.lengths.prompt + ctx.lengths.output;
  // Adapters hotter than half a GPU count as their replicas, as any placement must split them.
  const groups = byMaxLoraRank(ctx, piecesOf(ctx, catalog));
  const ranks = [...groups.keys()].sort((a, b) => a - b);
  const best = await Promise.all(
    ranks.map(async (rank) => {
      const members = groups.get(rank)!;
      const take = Math.min(members.length, LIMITS.maxGroups);
      const sample = Array.from(
        { length: take },
        (_, i) => members[Math.floor((i * members.length) / take)]!,
      );
      const workload = {
        rates: sample.map((a) => a.rate),
        ranks: sample.map(() => rank),
        requestLengths: ctx.requestLengths,
      };
      const result = await searchOptimum(
        ctx.profile,
        {
          workload,
          concurrent: BOUND_GRID.concurrent,
          parallel: BOUND_GRID.parallel,
          starvationThreshold: ctx.starvationThreshold,
          durationSeconds: SEARCH_SECONDS,
        },
        ctx.simulate,
      );
      // The most any pair completed, starving or not (an overloaded pair shows the most the GPU
      // can complete), re-run for an hour.
      const top = result.evaluated
        .filter((e) => e.simulated && e.feasible)
        .sort((a, b) => b.throughputTokensPerSecond - a.throughputTokensPerSecond)
        .slice(0, 1);
      const reruns = await Promise.all(
        top.map((e) =>
          ctx.simulate(
            scenarioFor(
              ctx.profile,
              workload,
              e.concurrentAdapters,
              e.parallelAdapters,
              result.maxLoraRank,
              VERIFY_SECONDS,
              1,
            ),
            ctx.profile,
            ctx.starvationThreshold,
          ),
        ),
      );
      const throughput = Math.max(0, ...reruns.map((r) => r.throughputTokensPerSecond));
      return { maxLoraRank: rank, throughputTokensPerSecond: throughput };
    }),
  );
  // A GPU that serves completes at least this share of its load (1 - threshold under the
  // published rule): that much of the catalog's load must be completed somewhere.
  const completed = requiredCompletion(ctx);
  let loadBound = 0;
  for (const b of best) {
    const offered = groups.get(b.maxLoraRank)!.reduce((s, a) => s + a.rate, 0) * tokens;
    if (b.throughputTokensPerSecond > 0)
      loadBound += (completed * offered) / b.throughputTokensPerSecond;
  }
  const countBound = catalog.length / MAX_ADAPTERS_PER_GPU;
  return {
    gpus: Math.max(1, Math.ceil(Math.max(loadBound, countBound) - 1e-9)),
    loadBound,
    countBound,
    bestGpuByRank: best,
  };
}
