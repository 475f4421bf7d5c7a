import { relative } from 'node:path';
import { fitLoraOnServingRuns, type SimulateMany } from '../calibrate/serving-fit.js';
import type { Profile } from '../twin/profile.js';
import { ingestRun, runFolders } from './ingest.js';
import { checkOnServingRuns, type ServingCheck } from './kit-check.js';
import { fitKitRuns, type KitRun } from './kit-fit.js';
import { readKitRuns } from './kit.js';
import { calibratedProfile, servingRunOf } from './serving.js';

/** Fewer served runs than this identify nothing of the LoRA cost. */
export const MIN_SERVED_RUNS = 3;
/** From this many served runs each of the five LoRA terms is refitted, below it one scale on them. */
export const FULL_FIT_RUNS = 24;

export interface RunsCalibration {
  profile: Profile;
  runs: number;
  servedRuns: number;
  failedToStart: number;
  /** Terms refitted, and the terms the runs cannot identify (left at the starting profile's). */
  refitted: string[];
  unchanged: string[];
  rounds: Array<{ itlMape: number }>;
  /** The kit's serving runs, held out of the fits, against the twin on the calibrated profile. */
  servingCheck?: ServingCheck;
}

interface CalibrateOptions {
  rounds?: number;
  select?: (dir: string) => boolean;
  onRound?: (round: number, mape: number) => void;
}

/**
 * Calibrates from recorded run folders, starting from `derivedStart` (the derived profile of
 * that GPU and model, or a measured one). What run.sh recorded (plan.json beside runs/) refits
 * the terms its experiments identify (kit-fit.ts), and its serving runs, held out of that fit,
 * check the result. Raw vLLM output (launcher flags, the client's result, server logs, metrics)
 * refits the LoRA step cost on its serving runs, as `npm run calibrate` fits it on
 * validation_runs.csv.
 */
export async function calibrateFromRuns(
  root: string,
  derivedStart: Profile,
  simulateMany: SimulateMany,
  options: CalibrateOptions = {},
): Promise<RunsCalibration> {
  const kit = readKitRuns(root);
  const result = await calibrate(root, kit?.runs, derivedStart, simulateMany, options);
  const servingCheck = kit
    ? await checkOnServingRuns(kit.runs, result.profile, simulateMany)
    : undefined;
  return servingCheck ? { ...result, servingCheck } : result;
}

async function calibrate(
  root: string,
  kitRuns: KitRun[] | undefined,
  derivedStart: Profile,
  simulateMany: SimulateMany,
  options: CalibrateOptions,
): Promise<RunsCalibration> {
  // What run.sh recorded (a plan.json beside runs/) refits the terms its experiments identify.
  const kitFit = kitRuns ? fitKitRuns(derivedStart, kitRuns) : undefined;
  const start = kitFit?.profile ?? derivedStart;
  const folders = runFolders(root).filter((d) => options.select?.(d) ?? true);
  const ingested = folders.map((d) => ({ dir: d, run: ingestRun(d) }));
  const runs = ingested.map(({ dir, run }) => servingRunOf(run, start, relative(root, dir)));
  const served = runs.filter((r) => r.ok);
  const failedToStart =
    ingested.filter(
      (i) => i.run.failure === 'kv_cache_insufficient' || i.run.failure === 'cuda_oom',
    ).length + (kitRuns?.filter((r) => r.outcome === 'startup-failed').length ?? 0);
  const kitRecorded = kitRuns?.filter((r) => r.outcome !== 'missing').length ?? 0;
  const unchanged = kitFit
    ? kitFit.unchanged.filter((u) => !u.startsWith('stepTime.lora'))
    : [
        'kvCache (the runs hold no start-up log of their cache size)',
        'stepTime.base',
        'scheduler',
        'adapterLoad',
      ];
  const kitRefitted = kitFit?.refitted ?? [];
  const kitLora = kitRefitted.find((r) => r.startsWith('stepTime.lora'));
  // Five LoRA terms need more runs than terms, spread over slots and loads, to be identified.
  if (served.length < MIN_SERVED_RUNS)
    return {
      profile: calibratedProfile(derivedStart, start, { runs: folders.length + kitRecorded, root }),
      runs: folders.length + kitRecorded,
      servedRuns: served.length,
      failedToStart,
      refitted: kitRefitted,
      unchanged: kitLora
        ? unchanged
        : [
            `stepTime.lora (${served.length} served runs; a scale on it needs at least ${MIN_SERVED_RUNS})`,
            ...unchanged,
          ],
      rounds: [],
    };
  const scaleOnly = served.length < FULL_FIT_RUNS;
  const fitted = await fitLoraOnServingRuns(
    start,
    runs,
    simulateMany,
    options.rounds ?? 3,
    options.onRound,
    scaleOnly,
  );
  return {
    profile: calibratedProfile(
      derivedStart,
      { ...fitted.profile, fit: { ...fitted.profile.fit, loraServingFit: fitted.report } },
      { runs: folders.length + kitRecorded, root },
    ),
    runs: folders.length + kitRecorded,
    servedRuns: served.length,
    failedToStart,
    refitted: [
      ...kitRefitted.filter((r) => r !== kitLora),
      scaleOnly
        ? `stepTime.lora, one scale on all five terms (${served.length} served runs; each term on its own from ${FULL_FIT_RUNS})`
        : 'stepTime.lora',
    ],
    unchanged,
    rounds: fitted.report.rounds.map((r) => ({ itlMape: r.itlMape })),
  };
}
