import { outsideEnvelope } from '../model/envelope.js';
import { workloadFeatures } from '../model/features.js';
import type { VerdictRun } from '../profiles/verdicts.js';
import { expectedServedThroughput } from './edge.js';
import {
  ModelUnavailableError,
  ForestNotBuiltError,
  predictWorkload,
  type ModelFile,
} from '../model/model.js';
import {
  assertFitsModelLen,
  assertSimulable,
  better,
  decidedWithoutTwin,
  DEFAULT_GRID,
  evaluatedPoint,
  maxLoraRankFor,
  scenarioFor,
  searchOptimum,
  snapLog,
  sortedUnique,
  servesObjective,
  type EvaluatedPoint,
  type Objective,
  type PointOptions,
  type PointSimulator,
  type SearchWorkload,
  withTtftAcrossArrivals,
} from '../search/index.js';
import type { LatencyEstimate, LatencyModel } from '../latency/index.js';
import { bindingLimit, headroomByTwin, nextOnLine, warningsFor } from './answer.js';
import type { Profile } from '../twin/index.js';
import { evidenceOf } from '../twin/profile.js';
import { withEvidenceWarning } from '../profiles/evidence.js';
import { modelAnswer, type ForestAnswer } from './model-answer.js';
import {
  envelopeFields,
  fmt,
  lowerOnLine,
  NoServingConfigurationError,
  startableSlots,
  vllmArgs,
} from './pairs.js';
import type { RecommendRequest, RecommendResponse } from './schema.js';

export { NoServingConfigurationError, startableSlots, vllmArgs } from './pairs.js';

export interface RecommenderDeps {
  loadProfile: (id: string) => Profile;
  loadModel: (profileId: string) => ModelFile;
  simulate: PointSimulator;
  /**
   * The same twin with TTFT read across arrival realisations (src/search/arrivals.ts); without
   * it, `simulate` is wrapped. A cache passes its own, which remembers the combinations.
   */
  simulateAcrossArrivals?: PointSimulator;
  /**
   * The twin's measured verdict errors for a profile (src/recommend/edge.ts); without them, or
   * with `edgeRule: false`, pairs at the edge are taken at the twin's word.
   */
  loadVerdictRuns?: (profileId: string) => readonly VerdictRun[];
  edgeRule?: boolean;
  /** The profile's latency correction and intervals (src/latency); without it, the twin's own. */
  loadLatencyModel?: (profileId: string) => LatencyModel | undefined;
}

const latencyText = (e: LatencyEstimate) =>
  e.ms >= 10_000
    ? `${(e.ms / 1000).toFixed(0)} s (${(e.lowMs / 1000).toFixed(0)}-${(e.highMs / 1000).toFixed(0)} s)`
    : `${fmt(e.ms)} ms (${fmt(e.lowMs)}-${fmt(e.highMs)} ms)`;

export class Recommender {
  /** The twin with TTFT read across arrival realisations where one is a lottery. */
  private readonly simulateAcrossArrivals: PointSimulator;

  constructor(private readonly deps: RecommenderDeps) {
    this.simulateAcrossArrivals =
      deps.simulateAcrossArrivals ?? withTtftAcrossArrivals(deps.simulate);
  }

  /**
   * The simulator pairs are judged with. Under an SLO latency decides, so TTFT is read across
   * arrival realisations (ITL's correction reads the TTFT regime too); otherwise one realisation
   * decides the same verdicts, and only the answer's own pair is read across them (`respond`).
   */
  private judging(request: RecommendRequest): PointSimulator {
    return request.slo ? this.simulateAcrossArrivals : this.deps.simulate;
  }

  async recommend(request: RecommendRequest): Promise<RecommendResponse> {
    const profile = this.deps.loadProfile(request.profile);
    const workload: SearchWorkload = request.workload;
    const maxLoraRank = maxLoraRankFor(profile, workload.ranks);
    assertFitsModelLen(profile, workload);
    const response = await this.answer(profile, request, maxLoraRank);
    return { ...response, recommendation: withEvidenceWarning(profile, response.recommendation) };
  }

  private answer(profile: Profile, request: RecommendRequest, maxLoraRank: number) {
    switch (request.method) {
      case 'model':
        this.requireForest(profile);
        return modelAnswer(
          profile,
          request,
          maxLoraRank,
          this.forestAnswer(profile, request),
          this.verdictRuns(profile),
        );
      case 'twin':
        return this.fromTwin(profile, request, maxLoraRank);
      case 'auto':
        return this.auto(profile, request, maxLoraRank);
    }
  }

  /** A profile that was not measured has a forest only once one was trained for it: never another's. */
  private requireForest(profile: Profile): void {
    if (evidenceOf(profile) === 'measured') return;
    try {
      this.deps.loadModel(profile.id);
    } catch (e) {
      if (!(e instanceof ModelUnavailableError)) throw e;
      throw new ForestNotBuiltError(
        `profile "${profile.id}" is ${evidenceOf(profile)}: it has no forest of its own, and another profile's would answer for a different GPU or model. Ask method "auto" or "twin" (the twin search), or build one with \`loraplan dataset --profile ${profile.id}\` then \`loraplan train --profile ${profile.id}\``,
      );
    }
  }

  private forestAnswer(profile: Profile, request: RecommendRequest): ForestAnswer {
    const model = this.deps.loadModel(profile.id);
    const x = workloadFeatures(request.workload, profile);
    const outside = outsideEnvelope(model.envelope, request.workload, x);
    return { model, x, prediction: predictWorkload(model, x), outside };
  }

  /** The forest's answer when there is a forest (undefined otherwise). */
  private optionalForest(profile: Profile, request: RecommendRequest) {
    try {
      return this.forestAnswer(profile, request);
    } catch (e) {
      if (e instanceof ModelUnavailableError) return undefined;
      throw e;
    }
  }

  private async fromTwin(
    profile: Profile,
    request: RecommendRequest,
    maxLoraRank: number,
    forest = this.optionalForest(profile, request),
  ): Promise<RecommendResponse> {
    // Started near the forest's answer inside its envelope: the same optimum, fewer simulations.
    // Outside it the forest's guess may be far off, and a cold search is cheaper than a bad start.
    const startNear =
      forest && forest.outside.length === 0 ? forest.prediction.concurrentAdapters : undefined;
    const result = await searchOptimum(
      profile,
      {
        workload: request.workload,
        concurrent: request.search?.concurrent ?? DEFAULT_GRID.concurrent,
        parallel: request.search?.parallel ?? DEFAULT_GRID.parallel,
        starvationThreshold: request.starvationThreshold,
        objective: request.objective,
        ...this.pointOptions(profile, request),
        ...(startNear !== undefined ? { startNear } : {}),
      },
      this.judging(request),
    );
    if (!result.best)
      throw new NoServingConfigurationError(
        result.reason ?? 'no configuration serves the workload',
        result.evaluated,
      );
    const evaluated = [...result.evaluated];
    const edge = await this.awayFromEdge(profile, request, maxLoraRank, result.best, evaluated);
    return {
      ...(await this.respond(
        profile,
        'twin',
        edge.best,
        maxLoraRank,
        evaluated,
        request,
        `The twin searched ${result.simulations} configurations${edge.note}`,
      )),
      ...envelopeFields(forest?.outside),
    };
  }

  /**
   * The forest's answer, snapped to the grid, is checked with the twin together with the next
   * larger concurrent value on its line (two simulations, one per core). From there the line is
   * climbed while more adapters still serve and do better, or descended until a pair serves; then
   * one step fewer and one step more slots are compared at the chosen concurrent value. If no pair
   * on the line serves, the full twin search decides: `auto` never returns a pair the twin says
   * starves, and for a new workload it usually costs four simulations.
   *
   * Under an SLO the forest's line is no guide: the forest learned the optimum without latency
   * limits, and the best pair under one often holds more adapters on fewer slots (Llama, rates
   * 0.4 / 0.05 / 0.0125, p99 ITL <= 200 ms: the line gave 48 x 24 at 3,050 tok/s, the grid
   * 96 x 8 at 5,928). There the twin searches the grid, started near the forest's answer.
   */
  private async auto(
    profile: Profile,
    request: RecommendRequest,
    maxLoraRank: number,
  ): Promise<RecommendResponse> {
    const forest = this.optionalForest(profile, request);
    if (!forest) {
      // A derived or calibrated profile has no forest until one is trained for it: the twin
      // searches the grid, and another profile's forest is never asked in its place.
      const full = await this.fromTwin(profile, request, maxLoraRank);
      return {
        ...full,
        method: 'auto',
        explanation: {
          summary: `Profile "${profile.id}" has no forest of its own (${evidenceOf(profile)}), so the twin searched the grid. ${full.explanation.summary}`,
        },
      };
    }
    const { prediction, outside } = forest;
    if (outside.length > 0 || request.slo) {
      const full = await this.fromTwin(profile, request, maxLoraRank, forest);
      const why =
        outside.length > 0
          ? `The workload is outside the forest's training envelope (${outside.map((o) => o.feature).join(', ')}), so the twin searched the grid.`
          : "Under an SLO the forest's answer, learned without latency limits, is no guide, so the twin searched the grid from it.";
      return {
        ...full,
        method: 'auto',
        explanation: { summary: `${why} ${full.explanation.summary}` },
      };
    }
    const concurrentGrid = sortedUnique(request.search?.concurrent ?? DEFAULT_GRID.concurrent);
    // Only slot counts vLLM can start with are worth a simulation.
    const slotLimit = startableSlots(profile, maxLoraRank);
    const allParallel = sortedUnique(request.search?.parallel ?? DEFAULT_GRID.parallel);
    const parallelGrid = allParallel.some((v) => v <= slotLimit)
      ? allParallel.filter((v) => v <= slotLimit)
      : allParallel;
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
    const serves = (e: EvaluatedPoint) => servesObjective(e, request.objective);
    const first = await at(
      [ci, ci + 1].filter((i) => i < concurrentGrid.length && line.some((l) => l.i === i)),
    );
    let best = bestServing(first, request.objective);
    if (best) {
      // Climb while the next larger value serves and does better.
      let i = concurrentGrid.indexOf(best.concurrentAdapters) + 1;
      while (
        i < concurrentGrid.length &&
        !evaluated.some((e) => e.concurrentAdapters === concurrentGrid[i])
      ) {
        const [point] = await at([i]);
        if (!serves(point!) || bestServing([best, point!], request.objective) !== point) break;
        best = point!;
        i++;
      }
    } else {
      // Descend until a pair serves.
      for (let i = ci - 1; i >= 0 && concurrentGrid[i]! >= p && !best; i--)
        best = bestServing(await at([i]), request.objective);
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
      best = bestServing([chosen, ...points], request.objective) ?? chosen;
    }
    if (!best) {
      try {
        const full = await this.fromTwin(profile, request, maxLoraRank, forest);
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
    const edge = await this.awayFromEdge(profile, request, maxLoraRank, best, evaluated);
    return {
      ...(await this.respond(
        profile,
        'auto',
        edge.best,
        maxLoraRank,
        evaluated,
        request,
        `The forest's answer was checked with the twin (${evaluated.length} simulations)${edge.note}`,
      )),
      envelope: 'inside',
    };
  }

  /**
   * The twin's verdict at the starvation edge is only as good as the twin: a pair just above the
   * line may starve in reality. From the twin's measured errors, each pair's chance of really
   * starving is estimated; the answer steps down its line (fewer adapters, same slots) while the
   * neighbour's expected served throughput, counting a starving answer as worth nothing, is
   * higher. Simulates at most the neighbours it compares.
   */
  private async awayFromEdge(
    profile: Profile,
    request: RecommendRequest,
    maxLoraRank: number,
    chosen: EvaluatedPoint,
    evaluated: EvaluatedPoint[],
  ): Promise<{ best: EvaluatedPoint; note: string }> {
    const runs = this.verdictRuns(profile);
    if (runs.length === 0) return { best: chosen, note: '' };
    const threshold = request.starvationThreshold;
    const worth = (e: EvaluatedPoint) => expectedServedThroughput(runs, e, threshold);
    const lower = lowerOnLine(
      request.search?.concurrent ?? DEFAULT_GRID.concurrent,
      chosen.concurrentAdapters,
      chosen.parallelAdapters,
    );
    let best = chosen;
    for (const c of lower) {
      const known = evaluated.find(
        (e) => e.concurrentAdapters === c && e.parallelAdapters === chosen.parallelAdapters,
      );
      const [neighbour] = known
        ? [known]
        : await this.evaluate(profile, request, maxLoraRank, [[c, chosen.parallelAdapters]]);
      if (!known) evaluated.push(neighbour!);
      if (!servesObjective(neighbour!, request.objective)) break;
      if (worth(neighbour!) <= worth(best)) break;
      best = neighbour!;
    }
    if (best === chosen) return { best, note: '' };
    const ratio = (e: EvaluatedPoint) =>
      (100 * e.throughputTokensPerSecond) / e.offeredTokensPerSecond;
    return {
      best,
      note: `; ${chosen.concurrentAdapters} adapters served only ${ratio(chosen).toFixed(1)}% of their load in the twin, within the twin's measured error of the starvation line, so the answer steps back to ${best.concurrentAdapters} (${ratio(best).toFixed(1)}%)`,
    };
  }

  /**
   * The answer's own pair with its TTFT read across arrival realisations, where its verdict was
   * judged on one (no SLO): the same flags and seed, so the verdict and throughput stand.
   */
  private async acrossArrivals(
    profile: Profile,
    request: RecommendRequest,
    maxLoraRank: number,
    chosen: EvaluatedPoint,
  ): Promise<EvaluatedPoint> {
    if (request.slo || !chosen.simulated) return chosen;
    const [point] = await this.evaluate(
      profile,
      request,
      maxLoraRank,
      [[chosen.concurrentAdapters, chosen.parallelAdapters]],
      this.simulateAcrossArrivals,
    );
    return point!;
  }

  private pointOptions(profile: Profile, request: RecommendRequest): PointOptions {
    const latencyModel = this.deps.loadLatencyModel?.(profile.id);
    return {
      ...(request.slo ? { slo: request.slo } : {}),
      ...(latencyModel ? { latencyModel } : {}),
    };
  }

  /** The twin's measured verdict errors, or none when the edge rule is off or unmeasured. */
  private verdictRuns(profile: Profile): readonly VerdictRun[] {
    return this.deps.edgeRule === false ? [] : (this.deps.loadVerdictRuns?.(profile.id) ?? []);
  }

  private async evaluate(
    profile: Profile,
    request: RecommendRequest,
    maxLoraRank: number,
    pairs: Array<[number, number]>,
    simulate: PointSimulator = this.judging(request),
  ): Promise<EvaluatedPoint[]> {
    return Promise.all(
      pairs.map(async ([c, p]) => {
        const decided = decidedWithoutTwin(
          profile,
          request.workload,
          c,
          p,
          maxLoraRank,
          request.starvationThreshold,
        );
        if (decided) return decided;
        assertSimulable(request.workload, c, 3600);
        const scenario = scenarioFor(profile, request.workload, c, p, maxLoraRank, 3600, 1);
        const r = await simulate(scenario, profile, request.starvationThreshold);
        return evaluatedPoint(scenario, r, this.pointOptions(profile, request));
      }),
    );
  }

  private async respond(
    profile: Profile,
    method: 'twin' | 'auto',
    chosen: EvaluatedPoint,
    maxLoraRank: number,
    evaluated: EvaluatedPoint[],
    request: RecommendRequest,
    how: string,
  ): Promise<RecommendResponse> {
    // The headroom needs only the pair, so its simulations share the pool with the realisations'.
    const [best, headroom] = await Promise.all([
      this.acrossArrivals(profile, request, maxLoraRank, chosen),
      headroomByTwin(
        profile,
        request.workload,
        chosen,
        maxLoraRank,
        request.starvationThreshold,
        this.deps.simulate,
      ),
    ]);
    const at = evaluated.indexOf(chosen);
    if (at >= 0) evaluated[at] = best;
    const next = nextOnLine(best, evaluated, (e) => e.simulated);
    const binding = bindingLimit(best, evaluated, request.slo, request.objective);
    // Off its own line (auto settled the slots after climbing another) the binding says why.
    const why = next
      ? ` With ${next.concurrentAdapters} adapters it would ${next.starving ? `starve (${fmt(next.throughputTokensPerSecond)} of ${fmt(next.offeredTokensPerSecond)} tok/s offered)` : next.sloViolated ? 'break the SLO' : request.objective === 'stable' && !next.stable ? 'let its queue grow' : 'not do better'}.`
      : binding
        ? ` Not more: ${binding.detail}.`
        : '';
    const latency = best.latency
      ? ` Predicted p99 TTFT ${latencyText(best.latency.ttftMs.p99)}, p99 ITL ${latencyText(best.latency.itlMs.p99)}.`
      : '';
    return {
      recommendation: {
        concurrentAdapters: best.concurrentAdapters,
        parallelAdapters: best.parallelAdapters,
        maxLoraRank,
        throughputTokensPerSecond: best.throughputTokensPerSecond,
        offeredTokensPerSecond: best.offeredTokensPerSecond,
        starving: best.starving,
        ...(best.latency ? { latency: best.latency } : {}),
        headroom,
        ...(binding ? { binding } : {}),
        warnings: warningsFor(best, true, request.slo),
      },
      vllmArgs: vllmArgs(best.concurrentAdapters, best.parallelAdapters, maxLoraRank),
      method,
      objective: request.objective,
      explanation: {
        summary:
          `${how}; ${best.concurrentAdapters} adapters with ${best.parallelAdapters} GPU slots serve ${fmt(best.throughputTokensPerSecond)} of ` +
          `${fmt(best.offeredTokensPerSecond)} tok/s offered without starving (threshold ${request.starvationThreshold}).${why}${latency}`,
      },
      evaluated: mergePoints(evaluated),
    };
  }
}

function bestServing(points: EvaluatedPoint[], objective: Objective): EvaluatedPoint | null {
  let best: EvaluatedPoint | null = null;
  for (const p of points) {
    if (!servesObjective(p, objective)) continue;
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
