import type { SimulateMany } from '../calibrate/serving-fit.js';
import { parseScenario } from '../runtime/scenario-runner.js';
import type { Profile, Scenario } from '../twin/index.js';
import type { KitRun } from './kit-fit.js';
import { serverFlag as flag } from './plan.js';

export interface ServingCheck {
  runs: Array<{
    id: string;
    realTokensPerSecond: number;
    twinTokensPerSecond: number;
    realMeanItlMs: number;
    twinMeanItlMs: number;
  }>;
  throughputMapePct: number;
  meanItlMapePct: number;
}

/** The twin's scenario for a kit serving experiment: its flags, adapters, rates, lengths, window. */
function scenarioOf(run: KitRun, profile: Profile): Scenario | undefined {
  const { experiment } = run;
  const load = experiment.load;
  if (load.kind !== 'poisson' || experiment.adapters.length === 0) return undefined;
  const args = experiment.serverArgs;
  return parseScenario({
    profile: profile.id,
    config: {
      maxLoras: flag(args, 'max-loras'),
      maxCpuLoras: flag(args, 'max-cpu-loras'),
      maxLoraRank: flag(args, 'max-lora-rank'),
      maxNumBatchedTokens: flag(args, 'max-num-batched-tokens') ?? 2048,
      maxNumSeqs: flag(args, 'max-num-seqs') ?? 2048,
    },
    workload: {
      adapters: experiment.adapters.map((a, i) => ({
        rate: load.ratesPerAdapter[i % load.ratesPerAdapter.length]!,
        rank: a.rank,
      })),
      requestLengths: { kind: 'fixed', input: load.promptTokens, output: load.outputTokens },
    },
    durationSeconds: load.durationSeconds,
    seed: 1,
  });
}

/**
 * The kit's serving runs, held out of every fit, against the twin on the calibrated profile:
 * tokens completed within the planned window per second, and the mean gap between tokens (as
 * vLLM's benchmark averages it, over every gap of every request).
 */
export async function checkOnServingRuns(
  runs: readonly KitRun[],
  profile: Profile,
  simulateMany: SimulateMany,
): Promise<ServingCheck | undefined> {
  const served = runs
    .filter((r) => r.experiment.identifies.includes('servingFit') && r.records.length > 0)
    .map((run) => ({ run, scenario: scenarioOf(run, profile) }))
    .filter((x): x is { run: KitRun; scenario: Scenario } => x.scenario !== undefined);
  if (served.length === 0) return undefined;
  const results = await simulateMany(served.map(({ scenario }) => ({ scenario, profile })));
  const rows = served.map(({ run, scenario }, i) => {
    const windowMs = scenario.durationSeconds * 1000;
    let tokens = 0;
    let gaps = 0;
    let gapSum = 0;
    for (const r of run.records) {
      if (!r.ok || r.ttftMs === null) continue;
      const doneMs = r.sentS * 1000 + r.ttftMs + r.itlMs.reduce((a, b) => a + b, 0);
      if (doneMs <= windowMs) tokens += r.promptTokens + r.outputTokens;
      gaps += r.itlMs.length;
      gapSum += r.itlMs.reduce((a, b) => a + b, 0);
    }
    return {
      id: run.experiment.id,
      realTokensPerSecond: tokens / scenario.durationSeconds,
      twinTokensPerSecond: results[i]!.throughputTokensPerSecond,
      realMeanItlMs: gaps > 0 ? gapSum / gaps : NaN,
      twinMeanItlMs: results[i]!.itlMs.mean,
    };
  });
  const mape = (pairs: Array<[number, number]>) =>
    (100 * pairs.reduce((s, [real, twin]) => s + Math.abs(twin / real - 1), 0)) / pairs.length;
  return {
    runs: rows,
    throughputMapePct: mape(rows.map((r) => [r.realTokensPerSecond, r.twinTokensPerSecond])),
    meanItlMapePct: mape(
      rows
        .filter((r) => Number.isFinite(r.realMeanItlMs))
        .map((r) => [r.realMeanItlMs, r.twinMeanItlMs]),
    ),
  };
}
