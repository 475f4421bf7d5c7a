import { LIMITS, capacityTokensPerSecond } from '../twin/index.js';
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
import { nextTurn } from './turns.js';

export interface LowerBound {
  /** No placement that serves the catalog uses fewer GPUs (as far as the twin can tell). */
  gpus: number;
  /** Sum over rank groups of offered load / the best single-GPU throughput for that group. */
  loadBound: number;
  /** Adapters / the most one GPU holds. */
  countBound: number;
  /**
   * The share of the offered load a serving GPU must complete over the profile's closed-form
   * capacity (src/twin/capacity.ts): no GPU completes more, whatever its adapters and slots.
   */
  capacityBound: number;
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
  await nextTurn();
  const tokens = ctx.lengths.prompt + ctx.lengths.output;
  // The most tokens/s any GPU of this profile completes at these lengths, in closed form.
  const capacity = capacityTokensPerSecond(ctx.profile, ctx.lengths);
  // Adapters hotter than half a GPU count as their replicas, as any placement must split them.
  const groups = byMaxLoraRank(ctx, piecesOf(ctx, catalog));
  const ranks = [...groups.keys()].sort((a, b) => a - b);
  const best = await Promise.all(
    ranks.map(async (rank) => {
      // Each group's search starts with closed-form work over its pairs: one group a turn
      // (nextTurn lets its waiters through one per loop iteration).
      await nextTurn();
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
      // Every pair ruled out in closed form (its offered load over the capacity bound) leaves no
      // simulated throughput: the capacity bound itself is then the most one GPU completes.
      const throughput =
        reruns.length > 0
          ? Math.min(capacity, Math.max(...reruns.map((r) => r.throughputTokensPerSecond)))
          : capacity;
      return { maxLoraRank: rank, throughputTokensPerSecond: throughput };
    }),
  );
  // A GPU that serves completes at least this share of its load (1 - threshold under the
  // published rule): that much of the catalog's load must be completed somewhere.
  const completed = requiredCompletion(ctx);
  let loadBound = 0;
  let offeredTotal = 0;
  for (const b of best) {
    const offered = groups.get(b.maxLoraRank)!.reduce((s, a) => s + a.rate, 0) * tokens;
    offeredTotal += offered;
    if (b.throughputTokensPerSecond > 0)
      loadBound += (completed * offered) / b.throughputTokensPerSecond;
  }
  const capacityBound = (completed * offeredTotal) / capacity;
  const countBound = catalog.length / MAX_ADAPTERS_PER_GPU;
  return {
    gpus: Math.max(1, Math.ceil(Math.max(loadBound, countBound, capacityBound) - 1e-9)),
    loadBound: Math.max(loadBound, capacityBound),
    countBound,
    capacityBound,
    bestGpuByRank: best,
  };
}

/**
 * The bound an answer reports: the twin's bound, but never above a GPU count the twin verified for
 * the whole catalog (the fewest GPUs that serve it are at most that many), and never below the
 * closed-form capacity bound, which holds whatever the twin says.
 */
export function reportedBound(bound: LowerBound, placedGpus: number, everythingPlaced: boolean) {
  const floor = Math.max(1, Math.ceil(Math.max(bound.capacityBound, bound.countBound) - 1e-9));
  const gpus = everythingPlaced
    ? Math.max(floor, Math.min(bound.gpus, placedGpus))
    : Math.max(floor, bound.gpus);
  return { ...bound, gpus, ratio: placedGpus / gpus };
}
