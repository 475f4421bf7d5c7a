import {
  KEEPS_UP_RATIO,
  type Profile,
  type Scenario,
  type SimulationResult,
  type StepStats,
} from '../twin/index.js';
import { num } from './csv.js';
import { ols } from '../stats/ols.js';
import type { ServingRun } from './runs.js';

export type SimulateMany = (
  tasks: Array<{ scenario: Scenario; profile: Profile }>,
) => Promise<Array<SimulationResult & { stepStats?: StepStats }>>;

export interface ServingFitReport {
  runs: number;
  rounds: Array<{ itlMape: number; lora: Profile['stepTime']['lora'] }>;
}

/**
 * Fits the LoRA step cost on real serving runs. The LoRA-overhead table covers 300 slots of rank
 * 8 at one batch size only, while the cost depends on slots, distinct adapters and batched tokens.
 * The twin's decode-token-weighted means of U (distinct adapters in the step) and T (batched
 * tokens) make the terms linear in the mean step time:
 *   realStep - (twinStep - twinLoraMs)
 *     = intercept + perSlot*maxLoras + perAdapterInBatch*U + (perBatchedToken + perBatchedTokenSlot*(maxLoras + 1))*T.
 * realStep is the run's mean ITL when it keeps up. When it falls behind, the client's ITL is no
 * longer the engine's step (the API server and the client lag behind a thousand requests in
 * flight), while the tokens it completes are: realStep = twinStep x twinThroughput / realThroughput.
 * The batch the twin forms depends on its step times, so the fit is repeated until it settles.
 * Rows are scaled by 1/realStep, so that relative errors are minimised.
 */
export async function fitLoraOnServingRuns(
  profile: Profile,
  runs: ServingRun[],
  simulateMany: SimulateMany,
  rounds = 3,
  onRound?: (round: number, itlMape: number) => void,
  /**
   * Refit one scale on the current LoRA terms instead of all five: what a handful of runs can
   * identify (five free terms from eight runs extrapolate wildly; docs/measure-validation.md).
   */
  scaleOnly = false,
): Promise<{ profile: Profile; report: ServingFitReport }> {
  const usable = runs.filter((r) => r.ok && r.scenario.profile === profile.id);
  let current = profile;
  const report: ServingFitReport = { runs: usable.length, rounds: [] };
  for (let round = 0; round < rounds; round++) {
    const results = await simulateMany(
      usable.map((r) => ({ scenario: r.scenario, profile: current })),
    );
    const xs: number[][] = [];
    const ys: number[] = [];
    let ape = 0;
    usable.forEach((run, i) => {
      const res = results[i]!;
      const s = res.stepStats;
      const realItl = num(run.row, 'mean_itl_ms');
      const realThroughput = num(run.row, 'total_tok_s');
      if (!s || s.decodeTokens === 0 || !(realItl > 0) || !res.feasible) return;
      const twinStep = res.itlMs.mean;
      ape += Math.abs(twinStep - realItl) / realItl;
      // Below it the step time is read from the run's throughput, not its ITL (above).
      const keepsUp = num(run.row, 'throughput_vs_ideal') >= KEEPS_UP_RATIO;
      const realStep =
        keepsUp || !(realThroughput > 0) || !(res.throughputTokensPerSecond > 0)
          ? realItl
          : (twinStep * res.throughputTokensPerSecond) / realThroughput;
      const loraMs = s.weightedLoraMs / s.decodeTokens;
      const maxLoras = run.scenario.config.maxLoras;
      const tokens = s.weightedBatchedTokens / s.decodeTokens;
      const row = [
        1,
        maxLoras,
        s.weightedAdapters / s.decodeTokens,
        tokens,
        (maxLoras + 1) * tokens,
      ];
      xs.push(row.map((v) => v / realStep));
      ys.push((realStep - (twinStep - loraMs)) / realStep);
    });
    const l = current.stepTime.lora;
    const now = [
      l.intercept,
      l.perSlot,
      l.perAdapterInBatch,
      l.perBatchedToken,
      l.perBatchedTokenSlot,
    ];
    let coefficients: number[];
    if (scaleOnly) {
      // Least squares of y on s x (row . current terms), in the same relative scaling.
      const predicted = xs.map((x) => x.reduce((a, v, k) => a + v * now[k]!, 0));
      const num = predicted.reduce((a, p, i) => a + p * ys[i]!, 0);
      const den = predicted.reduce((a, p) => a + p * p, 0);
      const scale = den > 0 ? Math.max(0, num / den) : 1;
      coefficients = now.map((c) => c * scale);
    } else coefficients = ols(xs, ys, false).coefficients;
    const [intercept, perSlot, perAdapterInBatch, perBatchedToken, perBatchedTokenSlot] =
      coefficients.map((c) => Number(c.toPrecision(6)));
    const lora = {
      intercept: intercept!,
      perSlot: perSlot!,
      perAdapterInBatch: perAdapterInBatch!,
      perBatchedToken: perBatchedToken!,
      perBatchedTokenSlot: perBatchedTokenSlot!,
    };
    const itlMape = (100 * ape) / xs.length;
    report.rounds.push({ itlMape, lora });
    onRound?.(round, itlMape);
    current = { ...current, stepTime: { ...current.stepTime, lora } };
  }
  return { profile: current, report };
}
