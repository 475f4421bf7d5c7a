import { workloadFeatures } from '../model/features.js';
import {
  localExplanation,
  ModelUnavailableError,
  predictWorkload,
  type ModelFile,
} from '../model/model.js';
import {
  better,
  DEFAULT_GRID,
  evaluatedPoint,
  maxLoraRankFor,
  scenarioFor,
  searchOptimum,
  snapLog,
  sortedUnique,
  type EvaluatedPoint,
  type PointSimulator,
  type SearchWorkload,
} from '../search/index.js';
import { meanLengths } from '../twin/lengths.js';
import type { Profile } from '../twin/index.js';
import type { RecommendRequest, RecommendResponse } from './schema.js';

/** No configuration on the candidate grid serves the workload (HTTP 422, CLI exit 1). */
export class NoServingConfigurationError extends Error {
  constructor(
    message: string,
    readonly evaluated: EvaluatedPoint[],
  ) {
    super(message);
  }
}

export interface RecommenderDeps {
  loadProfile: (id: string) => Profile;
  loadModel: (profileId: string) => ModelFile;
  simulate: PointSimulator;
}

export const vllmArgs = (concurrent: number, parallel: number, rank: number): string[] => [
  '--enable-lora',
  `--max-loras=${parallel}`,
  `--max-cpu-loras=${concurrent}`,
  `--max-lora-rank=${rank}`,
];

/** Offered tokens/s of `concurrent` adapters cycling through the workload's rate groups. */
export function offeredTokensPerSecond(
  profile: Profile,
  workload: SearchWorkload,
  concurrent: number,
): number {
  const lengths = meanLengths(
    workload.requestLengths ?? { kind: 'sharegpt' },
    profile.requestLengths,
  );
  let rate = 0;
  for (let i = 0; i < concurrent; i++) rate += workload.rates[i % workload.rates.length]!;
  return rate * (lengths.prompt + lengths.output);
}

const fmt = (v: number) => Math.round(v).toLocaleString('en-US');

export class Recommender {
  constructor(private readonly deps: RecommenderDeps) {}

  async recommend(request: RecommendRequest): Promise<RecommendResponse> {
    const profile = this.deps.loadProfile(request.profile);
    const workload: SearchWorkload = request.workload;
    const maxLoraRank = maxLoraRankFor(profile, workload.ranks);
    switch (request.method) {
      case 'model':
        return this.fromModel(profile, request, maxLoraRank);
      case 'twin':
        return this.fromTwin(profile, request, maxLoraRank);
      case 'auto':
        return this.auto(profile, request, maxLoraRank);
    }
  }

  private forestAnswer(profile: Profile, request: RecommendRequest) {
    const model = this.deps.loadModel(profile.id);
    const x = workloadFeatures(request.workload, profile);
    return { model, x, prediction: predictWorkload(model, x) };
  }

  private forestConcurrent(profile: Profile, request: RecommendRequest): number | undefined {
    try {
      return this.forestAnswer(profile, request).prediction.concurrentAdapters;
    } catch (e) {
      if (e instanceof ModelUnavailableError) return undefined;
      throw e;
    }
  }

  private fromModel(
    profile: Profile,
    request: RecommendRequest,
    maxLoraRank: number,
  ): RecommendResponse {
    const { model, x, prediction } = this.forestAnswer(profile, request);
    const grid = request.search;
    let c = grid?.concurrent
      ? snapLog(prediction.concurrentAdapters, grid.concurrent)
      : Math.max(1, Math.round(prediction.concurrentAdapters));
    const pCandidates = grid?.parallel?.filter((p) => p <= c);
    let p = pCandidates?.length
      ? snapLog(prediction.parallelAdapters, pCandidates)
      : Math.max(1, Math.round(prediction.parallelAdapters));
    if (p > c) [c, p] = grid?.concurrent ? [c, c] : [Math.max(c, p), p];
    const offered = offeredTokensPerSecond(profile, request.workload, c);
    // The forest predicts the completion ratio at the optimum: priced at the snapped pair's load.
    const throughput = Math.min(1, prediction.completionRatio) * offered;
    const effects = localExplanation(model, x);
    return {
      recommendation: {
        concurrentAdapters: c,
        parallelAdapters: p,
        maxLoraRank,
        throughputTokensPerSecond: throughput,
        offeredTokensPerSecond: offered,
        // The forest learned non-starving optima only: its answer is predicted to serve. `auto` checks it.
        starving: false,
      },
      vllmArgs: vllmArgs(c, p, maxLoraRank),
      method: 'model',
      explanation: {
        summary:
          `The forest (${model.trainingSet.rows} twin-optimised workloads) predicts ${fmt(prediction.concurrentAdapters)} concurrent and ` +
          `${fmt(prediction.parallelAdapters)} parallel adapters${grid ? ', snapped to the candidate grid' : ''}. ` +
          `Most influential here: ${effects.map((e) => e.feature).join(', ')}.`,
        featureEffects: effects,
        featureImportance: model.targets.concurrent.permutationImportance,
        modelUncertaintyLog2: prediction.concurrentSpreadLog2,
      },
      evaluated: [],
    };
  }

  private async fromTwin(
    profile: Profile,
    request: RecommendRequest,
    maxLoraRank: number,
    // Started near the forest's answer when there is a forest: the same optimum, fewer simulations.
    startNear = this.forestConcurrent(profile, request),
  ): Promise<RecommendResponse> {
    const result = await searchOptimum(
      profile,
      {
        workload: request.workload,
        concurrent: request.search?.concurrent ?? DEFAULT_GRID.concurrent,
        parallel: request.search?.parallel ?? DEFAULT_GRID.parallel,
        starvationThreshold: request.starvationThreshold,
        ...(request.slo ? { slo: request.slo } : {}),
        ...(startNear !== undefined ? { startNear } : {}),
      },
      this.deps.simulate,
    );
    if (!result.best)
      throw new NoServingConfigurationError(
        result.reason ?? 'no configuration serves the workload',
        result.evaluated,
      );
    return this.respond(
      'twin',
      result.best,
      maxLoraRank,
      result.evaluated,
      request,
      `The twin searched ${result.simulations} configurations`,
    );
  }

  /**
   * The forest's answer, snapped to the grid, is checked with the twin together with the next
   * larger concurrent value on its line (two simulations, one per core). From there the line is
   * climbed while more adapters still serve and do better, or descended until a pair serves; then
   * one step fewer and one step more slots are compared at the chosen concurrent value. If no pair
   * on the line serves, the full twin search decides: `auto` never returns a pair the twin says
   * starves, and for a new workload it usually costs four simulations.
   */
  private async auto(
    profile: Profile,
    request: RecommendRequest,
    maxLoraRank: number,
  ): Promise<RecommendResponse> {
    const concurrentGrid = sortedUnique(request.search?.concurrent ?? DEFAULT_GRID.concurrent);
    const parallelGrid = sortedUnique(request.search?.parallel ?? DEFAULT_GRID.parallel);
    const { prediction } = this.forestAnswer(profile, request);
    let ci = concurrentGrid.indexOf(snapLog(prediction.concurrentAdapters, concurrentGrid));
    const p = snapLog(
      prediction.parallelAdapters,
      parallelGrid.filter((v) => v <= concurrentGrid[ci]!).length
        ? parallelGrid.filter((v) => v <= concurrentGrid[ci]!)
        : parallelGrid,
    );
    while (ci < concurrentGrid.length - 1 && concurrentGrid[ci]! < p) ci++;
    const line = concurrentGrid.map((c, i) => ({ c, i })).filter(({ c }) => c >= p);
    const evaluated: EvaluatedPoint[] = [];
    const at = async (indexes: number[]) => {
      const points = await this.evaluate(
        profile,
        request,
        maxLoraRank,
        indexes.map((i) => [concurrentGrid[i]!, p] as [number, number]),
      );
      evaluated.push(...points);
      return points;
    };
    const serves = (e: EvaluatedPoint) => e.feasible && !e.starving && !e.sloViolated;
    const first = await at(
      [ci, ci + 1].filter((i) => i < concurrentGrid.length && line.some((l) => l.i === i)),
    );
    let best = bestServing(first);
    if (best) {
      // Climb while the next larger value serves and does better.
      let i = concurrentGrid.indexOf(best.concurrentAdapters) + 1;
      while (
        i < concurrentGrid.length &&
        !evaluated.some((e) => e.concurrentAdapters === concurrentGrid[i])
      ) {
        const [point] = await at([i]);
        if (!serves(point!) || bestServing([best, point!]) !== point) break;
        best = point!;
        i++;
      }
    } else {
      // Descend until a pair serves.
      for (let i = ci - 1; i >= 0 && concurrentGrid[i]! >= p && !best; i--)
        best = bestServing(await at([i]));
    }
    if (best) {
      // The forest's slot count may be a step off: compare one step fewer and one more slots at
      // the chosen concurrent value (two more simulations, run side by side).
      const chosen: EvaluatedPoint = best;
      const pi = parallelGrid.indexOf(p);
      const others = [parallelGrid[pi - 1], parallelGrid[pi + 1]].filter(
        (q): q is number => q !== undefined && q <= chosen.concurrentAdapters,
      );
      const points = await this.evaluate(
        profile,
        request,
        maxLoraRank,
        others.map((q) => [chosen.concurrentAdapters, q] as [number, number]),
      );
      evaluated.push(...points);
      best = bestServing([chosen, ...points]) ?? chosen;
    }
    if (!best) {
      try {
        const full = await this.fromTwin(
          profile,
          request,
          maxLoraRank,
          prediction.concurrentAdapters,
        );
        return {
          ...full,
          method: 'auto',
          evaluated: mergePoints([...evaluated, ...full.evaluated]),
          explanation: {
            summary: `No pair on the forest's line serves the workload, so the twin searched the grid. ${full.explanation.summary}`,
          },
        };
      } catch (e) {
        if (e instanceof NoServingConfigurationError)
          throw new NoServingConfigurationError(
            e.message,
            mergePoints([...evaluated, ...e.evaluated]),
          );
        throw e;
      }
    }
    return this.respond(
      'auto',
      best,
      maxLoraRank,
      evaluated,
      request,
      `The forest's answer was checked with the twin (${evaluated.length} simulations)`,
    );
  }

  private async evaluate(
    profile: Profile,
    request: RecommendRequest,
    maxLoraRank: number,
    pairs: Array<[number, number]>,
  ): Promise<EvaluatedPoint[]> {
    return Promise.all(
      pairs.map(async ([c, p]) => {
        const r = await this.deps.simulate(
          scenarioFor(profile, request.workload, c, p, maxLoraRank, 3600, 1),
          profile,
          request.starvationThreshold,
        );
        return evaluatedPoint(c, p, r, request.slo);
      }),
    );
  }

  private respond(
    method: 'twin' | 'auto',
    best: EvaluatedPoint,
    maxLoraRank: number,
    evaluated: EvaluatedPoint[],
    request: RecommendRequest,
    how: string,
  ): RecommendResponse {
    const next = evaluated
      .filter(
        (e) =>
          e.parallelAdapters === best.parallelAdapters &&
          e.concurrentAdapters > best.concurrentAdapters &&
          e.simulated,
      )
      .sort((a, b) => a.concurrentAdapters - b.concurrentAdapters)[0];
    const why = next
      ? ` With ${next.concurrentAdapters} adapters it would ${next.starving ? `starve (${fmt(next.throughputTokensPerSecond)} of ${fmt(next.offeredTokensPerSecond)} tok/s offered)` : next.sloViolated ? 'break the SLO' : 'not do better'}.`
      : '';
    return {
      recommendation: {
        concurrentAdapters: best.concurrentAdapters,
        parallelAdapters: best.parallelAdapters,
        maxLoraRank,
        throughputTokensPerSecond: best.throughputTokensPerSecond,
        offeredTokensPerSecond: best.offeredTokensPerSecond,
        starving: best.starving,
      },
      vllmArgs: vllmArgs(best.concurrentAdapters, best.parallelAdapters, maxLoraRank),
      method,
      explanation: {
        summary:
          `${how}; ${best.concurrentAdapters} adapters with ${best.parallelAdapters} GPU slots serve ${fmt(best.throughputTokensPerSecond)} of ` +
          `${fmt(best.offeredTokensPerSecond)} tok/s offered without starving (threshold ${request.starvationThreshold}).${why}`,
      },
      evaluated: mergePoints(evaluated),
    };
  }
}

function bestServing(points: EvaluatedPoint[]): EvaluatedPoint | null {
  let best: EvaluatedPoint | null = null;
  for (const p of points) {
    if (!p.feasible || p.starving || p.sloViolated) continue;
    if (better(p, best)) best = p;
  }
  return best;
}

function mergePoints(points: EvaluatedPoint[]): EvaluatedPoint[] {
  const byKey = new Map<string, EvaluatedPoint>();
  for (const p of points) byKey.set(`${p.concurrentAdapters}x${p.parallelAdapters}`, p);
  return [...byKey.values()].sort(
    (a, b) =>
      a.parallelAdapters - b.parallelAdapters || a.concurrentAdapters - b.concurrentAdapters,
  );
}
