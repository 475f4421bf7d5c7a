// The `model` method's answer: the forest's pair made safe to act on in closed form, with no
// simulation (src/recommend/recommender.ts asks for it; the twin methods live there).
import type { OutsideFeature } from '../envelope/index.js';
import { localExplanation, type ForestPrediction, type ModelFile } from '../model/model.js';
import {
  DEFAULT_GRID,
  offeredTokensPerSecond,
  snapLog,
  sortedUnique,
  workloadCapacity,
} from '../search/index.js';
import { mustStarve, type Profile } from '../twin/index.js';
import { headroomByCapacity, warningsFor } from './answer.js';
import type { VerdictRun } from '../profiles/verdicts.js';
import { expectedServedThroughput } from './edge.js';
import {
  envelopeFields,
  fmt,
  largestServable,
  lowerOnLine,
  NoServingConfigurationError,
  startableSlots,
  vllmArgs,
} from './pairs.js';
import type { RecommendRequest, RecommendResponse } from './schema.js';
import { chanceOfServing, closedFormCheck, nothingLikely, servesCheck } from './neighbours.js';
import { SERVES_STEP_BACK_BELOW } from '../model/serves.js';

/** The forest's prediction for a workload, and where it lies against the training envelope. */
export interface ForestAnswer {
  model: ModelFile;
  x: number[];
  prediction: ForestPrediction;
  outside: OutsideFeature[];
}

/**
 * The forest's answer, made safe to act on without a simulation: slots are clamped to what
 * leaves vLLM room for one max_model_len sequence (closed form, the start-up check), adapters to
 * what the GPU's capacity bound can serve, and the throughput claim is capped at both the offered
 * load and that bound. Outside the training envelope the answer says so. `runs` are the twin's
 * measured verdict errors the edge rule reads (none: pairs at the edge are taken at its word).
 */
export function modelAnswer(
  profile: Profile,
  request: RecommendRequest,
  maxLoraRank: number,
  forest: ForestAnswer,
  runs: readonly VerdictRun[],
): RecommendResponse {
  const { model, x, prediction, outside } = forest;
  const workload = request.workload;
  const threshold = request.starvationThreshold;
  const grid = request.search;
  const notes: string[] = [];

  const slotLimit = startableSlots(profile, maxLoraRank);
  if (slotLimit === 0)
    throw new NoServingConfigurationError(
      `vLLM cannot start with any slot count at --max-lora-rank=${maxLoraRank}: even one slot leaves less KV cache than one ${profile.maxModelLen}-token sequence`,
      [],
    );
  const capacity = workloadCapacity(profile, workload);
  const offered = (c: number) => offeredTokensPerSecond(profile, workload, c);
  const servable = (c: number) => !mustStarve(offered(c), capacity, threshold);
  // The forest predicts the completion ratio at the optimum; a ratio is between 0 and 1.
  const completionRatio = Math.min(1, Math.max(0, prediction.completionRatio));

  const concurrentCandidates = grid?.concurrent ? sortedUnique(grid.concurrent) : undefined;
  let c = concurrentCandidates
    ? snapLog(prediction.concurrentAdapters, concurrentCandidates)
    : Math.max(1, Math.round(prediction.concurrentAdapters));
  if (!servable(c)) {
    const fewer = concurrentCandidates
      ? [...concurrentCandidates].reverse().find((v) => v < c && servable(v))
      : largestServable(c, servable);
    if (fewer === undefined)
      throw new NoServingConfigurationError(
        `every configuration starves: even ${concurrentCandidates?.[0] ?? 1} adapter(s) offer ${fmt(offered(concurrentCandidates?.[0] ?? 1))} tok/s, more than one GPU can complete (at most ${fmt(capacity)} tok/s for these request lengths); split the adapters over more GPUs or lower the rates`,
        [],
      );
    notes.push(
      `${c} adapters would offer ${fmt(offered(c))} tok/s, beyond what one GPU can complete (at most ${fmt(capacity)} tok/s), so ${fewer} are recommended`,
    );
    c = fewer;
  }

  const parallelCandidates = grid?.parallel ? sortedUnique(grid.parallel) : undefined;
  const slotCap = Math.min(slotLimit, c);
  let p: number;
  if (parallelCandidates) {
    const startable = parallelCandidates.filter((v) => v <= slotLimit);
    if (startable.length === 0)
      throw new NoServingConfigurationError(
        `no candidate slot count lets vLLM start at --max-lora-rank=${maxLoraRank} (at most ${slotLimit} slots leave room for one ${profile.maxModelLen}-token sequence)`,
        [],
      );
    const fitting = startable.filter((v) => v <= c);
    p = snapLog(prediction.parallelAdapters, fitting.length ? fitting : startable);
    if (p > c) {
      // vLLM requires max_loras <= max_cpu_loras: take the smallest adapter count that allows p.
      const raised = concurrentCandidates?.find((v) => v >= p) ?? p;
      if (!servable(raised))
        throw new NoServingConfigurationError(
          `no candidate pair both starts and serves: ${p} slots need at least ${raised} adapters, which offer more than one GPU can complete`,
          [],
        );
      c = raised;
    }
  } else {
    p = Math.min(slotCap, Math.max(1, Math.round(prediction.parallelAdapters)));
  }
  if (Math.round(prediction.parallelAdapters) > slotLimit)
    notes.push(
      `the forest's ${fmt(prediction.parallelAdapters)} slots would leave vLLM less KV cache than one ${profile.maxModelLen}-token sequence at --max-lora-rank=${maxLoraRank}; clamped to ${p}`,
    );

  // The forest's own error: among the adapter counts up to its answer, take the one with the
  // highest throughput times the chance (from its out-of-fold residuals) that the twin's
  // starvation edge lies above it.
  const residuals = model.concurrentEdgeResidualsLog2 ?? [];
  if (residuals.length > 0) {
    const predicted = prediction.concurrentAdapters;
    // Share of residuals >= log2(v / predicted): a binary search in the sorted residuals.
    const serves = (v: number) => {
      const needed = Math.log2(v / predicted);
      let lo = 0;
      let hi = residuals.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (residuals[mid]! < needed) lo = mid + 1;
        else hi = mid;
      }
      return (residuals.length - lo) / residuals.length;
    };
    const ceiling = Math.min(completionRatio * offered(c), capacity);
    const candidates = concurrentCandidates
      ? // Ascending, as before: on an exact tie the fewer adapters win.
        lowerOnLine(concurrentCandidates, c, p).reverse()
      : sortedUnique(
          Array.from({ length: 65 }, (_, k) => Math.max(p, Math.round(c * 2 ** (-k / 32)))),
        );
    let best = c;
    let bestScore = ceiling * serves(c);
    for (const v of candidates) {
      const score = Math.min(offered(v), ceiling) * serves(v);
      if (score > bestScore) [best, bestScore] = [v, score];
    }
    if (best !== c) {
      notes.push(
        `the forest's adapter count overshot the twin's starvation edge on ${(100 * (1 - serves(c))).toFixed(0)}% of comparable training workloads; ${best} adapters are the better bet`,
      );
      c = best;
    }
  }
  let offeredAtC = offered(c);
  // The forest predicts the completion ratio at the optimum: priced at this pair's load, and
  // never above what arrives or what the GPU can physically complete.
  let throughput = Math.min(completionRatio * offeredAtC, capacity);
  // The edge rule in closed form: fewer adapters are priced as the GPU completing the same
  // tokens (or all they offer), and the answer steps down while that is the better bet.
  if (runs.length > 0) {
    const worth = (t: number, o: number) =>
      expectedServedThroughput(
        runs,
        { throughputTokensPerSecond: t, offeredTokensPerSecond: o },
        threshold,
      );
    const lower = lowerOnLine(concurrentCandidates ?? DEFAULT_GRID.concurrent, c, p);
    const from = c;
    const fromRatio = throughput / offeredAtC;
    for (const v of lower) {
      const o = offered(v);
      const t = Math.min(o, throughput);
      if (worth(t, o) <= worth(throughput, offeredAtC)) break;
      [c, offeredAtC, throughput] = [v, o, t];
    }
    if (c !== from)
      notes.push(
        `${from} adapters would serve ${(100 * fromRatio).toFixed(1)}% of their load, within the twin's measured error of the starvation line, so ${c} are recommended`,
      );
  }
  // Last, the pairs next to the answer (src/recommend/neighbours.ts): with the forest's model of
  // the chance a pair serves, the answer steps back where that chance is below
  // SERVES_STEP_BACK_BELOW, or one adapter step up where it reaches SERVES_STEP_UP_FROM; with an
  // older forest, the closed-form steady state (src/search/estimate.ts) vetoes a pair it says starves.
  const chanceAt = model.servesAtPair
    ? chanceOfServing(model.servesAtPair, profile, workload, maxLoraRank)
    : undefined;
  const neighbourGrid = {
    concurrent: concurrentCandidates ?? DEFAULT_GRID.concurrent,
    parallel: (parallelCandidates ?? DEFAULT_GRID.parallel).filter((v) => v <= slotLimit),
    parallelGiven: parallelCandidates !== undefined,
  };
  const neighbour = chanceAt
    ? servesCheck(chanceAt, c, p, neighbourGrid, (v) => Math.min(offered(v), capacity), servable)
    : closedFormCheck(profile, workload, maxLoraRank, threshold, c, p, neighbourGrid);
  if (neighbour) {
    const pct = (v: number) => `${(100 * v).toFixed(0)}%`;
    notes.push(
      neighbour.reading === 'chance'
        ? `by the twin's verdicts on the training searches' pairs, ${c} adapters on ${p} slots serve with a chance of ${pct(neighbour.here)} and ${neighbour.c} on ${neighbour.p} with ${pct(neighbour.there)}, so ${neighbour.c} on ${neighbour.p} are recommended`
        : `the closed-form steady state says ${c} adapters on ${p} slots complete ${pct(neighbour.here)} of their load, so ${neighbour.c} on ${neighbour.p} are recommended (it says they complete ${pct(neighbour.there)})`,
    );
    // A step down keeps the claim under the one for more adapters; a step up is priced at its own
    // load, as the forest prices any pair (capping it at the smaller pair's claim would make the
    // answer say it starves).
    const claimBefore = neighbour.c > c ? Infinity : throughput;
    [c, p] = [neighbour.c, neighbour.p];
    offeredAtC = offered(c);
    throughput = Math.min(
      claimBefore,
      completionRatio * offeredAtC,
      capacity,
      neighbour.throughput,
    );
  }
  // Where not even the grid's fewest adapters are likely enough to serve, no pair is: refuse, as
  // the capacity bound refuses, rather than answer a pair that starves.
  if (chanceAt) {
    const hopeless = nothingLikely(chanceAt, c, p, neighbourGrid);
    if (hopeless)
      throw new NoServingConfigurationError(
        `every configuration likely starves: by the twin's verdicts on the training searches' pairs, ${c} adapters on ${p} slots serve with a chance of ${(100 * hopeless.here).toFixed(0)}%, and even ${hopeless.fewest} adapter(s) on any slot count with at most ${(100 * hopeless.atFewest).toFixed(0)}% (a pair is recommended from ${(100 * SERVES_STEP_BACK_BELOW).toFixed(0)}%); split the adapters over more GPUs or lower the rates, or ask method auto or twin to simulate`,
        [],
      );
  }
  const effects = localExplanation(model, x);
  const envelopeNote = outside.length
    ? ` Outside the training envelope (${outside.map((o) => o.feature).join(', ')}): the forest extrapolates here, so check it with method=auto or twin.`
    : '';
  return {
    recommendation: {
      concurrentAdapters: c,
      parallelAdapters: p,
      maxLoraRank,
      throughputTokensPerSecond: throughput,
      offeredTokensPerSecond: offeredAtC,
      starving: throughput < (1 - threshold) * offeredAtC,
      headroom: headroomByCapacity(profile, request.workload, c, threshold),
      warnings: warningsFor(
        { throughputTokensPerSecond: throughput, offeredTokensPerSecond: offeredAtC },
        false,
      ),
    },
    vllmArgs: vllmArgs(c, p, maxLoraRank),
    method: 'model',
    objective: request.objective,
    ...envelopeFields(outside),
    explanation: {
      summary:
        `The forest (${model.trainingSet.rows} twin-optimised workloads) predicts ${fmt(prediction.concurrentAdapters)} concurrent and ` +
        `${fmt(prediction.parallelAdapters)} parallel adapters${grid ? ', snapped to the candidate grid' : ''}. ` +
        (notes.length ? `${notes.join('; ')}. ` : '') +
        `Most influential here: ${effects.map((e) => e.feature).join(', ')}.` +
        envelopeNote,
      featureEffects: effects,
      featureImportance: model.targets.concurrent.permutationImportance,
      modelUncertaintyLog2: prediction.concurrentSpreadLog2,
    },
    evaluated: [],
  };
}
