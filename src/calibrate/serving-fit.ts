import type { Profile, Scenario, SimulationResult, StepStats } from '../twin/index.js';
import { num } from './csv.js';
import { ols } from './ols.js';
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
 * Each run's mean ITL is a decode-token-weighted mean of step times, so with the twin's weighted
 * means of U and tokens per step the LoRA terms enter linearly:
 *   realItl - (twinItl - twinLoraMs) = intercept + perSlot*maxLoras + perAdapterInBatch*U + perBatchedToken*T.
 * The batch the twin forms depends on its step times, so the fit is repeated until it settles.
 * Rows are scaled by 1/realItl, so that relative errors are minimised.
 */
export async function fitLoraOnServingRuns(
  profile: Profile,
  runs: ServingRun[],
  simulateMany: SimulateMany,
  rounds = 3,
  onRound?: (round: number, itlMape: number) => void,
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
      const real = num(run.row, 'mean_itl_ms');
      if (!s || s.decodeTokens === 0 || !(real > 0) || !res.feasible) return;
      ape += Math.abs(res.itlMs.mean - real) / real;
      const loraMs = s.weightedLoraMs / s.decodeTokens;
      // Runs that fall behind: their throughput, not their client-side ITL, says how long a step takes.
      const realRatio = num(run.row, 'throughput_vs_ideal');
      const hybrid = process.env.SERVING_FIT_TARGET === 'hybrid' && realRatio < 0.95;
      const stepTarget = hybrid
        ? res.itlMs.mean * (res.throughputTokensPerSecond / num(run.row, 'total_tok_s'))
        : real;
      const target = stepTarget - (res.itlMs.mean - loraMs);
      const row = [
        1,
        run.scenario.config.maxLoras,
        s.weightedAdapters / s.decodeTokens,
        s.weightedBatchedTokens / s.decodeTokens,
        ((run.scenario.config.maxLoras + 1) * s.weightedBatchedTokens) / s.decodeTokens,
      ].slice(0, process.env.SERVING_FIT_TS === 'off' ? 4 : 5);
      xs.push(row.map((v) => v / stepTarget));
      ys.push(target / stepTarget);
    });
    const fit = ols(xs, ys, false);
    const [intercept, perSlot, perAdapterInBatch, perBatchedToken, perBatchedTokenSlot] = fit.coefficients.map((c) =>
      Number(c.toPrecision(6)),
    );
    const lora = {
      intercept: intercept!,
      perSlot: perSlot!,
      perAdapterInBatch: perAdapterInBatch!,
      perBatchedToken: perBatchedToken!,
      perBatchedTokenSlot: perBatchedTokenSlot ?? 0,
    };
    const itlMape = (100 * ape) / xs.length;
    report.rounds.push({ itlMape, lora });
    onRound?.(round, itlMape);
    current = { ...current, stepTime: { ...current.stepTime, lora } };
  }
  return { profile: current, report };
}
