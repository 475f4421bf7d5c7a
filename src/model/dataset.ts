import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PACKAGE_ROOT } from '../profiles/store.js';
import {
  DEFAULT_GRID,
  searchOptimum,
  type PointSimulator,
  type SearchWorkload,
} from '../search/index.js';
import { seededStream } from '../twin/random.js';
import type { Profile } from '../twin/profile.js';
import { workloadFeatures } from './features.js';

/** The ranges the training workloads cover (at least the published ones). */
export const WORKLOAD_SPACE = {
  groups: [1, 5],
  rate: [0.003125, 3.2],
  ranks: [8, 16, 32],
  lengthScale: [0.5, 2],
} as const;

/**
 * Window of the dataset's searches: the measurements' hour. Shorter windows label a different
 * optimum: near the edge, many-adapter configurations ramp up for tens of minutes as their
 * waiting queue fills the batch, so a 900 s window starves pairs that serve the hour
 * (docs/training.md).
 */
export const DATASET_DURATION_SECONDS = 3600;

export interface DatasetRow {
  index: number;
  /** Sampling seed and search window of the row: a file never mixes either. */
  seed: number;
  durationSeconds: number;
  workload: SearchWorkload;
  features: number[];
  /** null when every configuration starves. */
  optimum: {
    concurrentAdapters: number;
    parallelAdapters: number;
    throughputTokensPerSecond: number;
  } | null;
  maxLoraRank: number;
  /** Every simulated pair as [concurrent, parallel, throughput, serves 0/1]: lets the optimum be relabelled without re-simulating. */
  evaluated: Array<[number, number, number, number]>;
  simulations: number;
  wallMs: number;
}

/**
 * Workload `index` of a dataset with seed `seed`: drawn from its own stream, so any subset of
 * indexes can be (re)built in any order, which is what makes the builder resumable.
 */
export function sampleWorkload(seed: number, index: number): SearchWorkload {
  const u = seededStream((seed * 1_000_003 + index) | 0, 100);
  const [gMin, gMax] = WORKLOAD_SPACE.groups;
  const groups = gMin + Math.floor(u.next() * (gMax - gMin + 1));
  const [rLo, rHi] = WORKLOAD_SPACE.rate;
  const logUniform = (lo: number, hi: number) =>
    Math.exp(Math.log(lo) + u.next() * (Math.log(hi) - Math.log(lo)));
  const rates = Array.from({ length: groups }, () => Number(logUniform(rLo, rHi).toPrecision(4)));
  const ranks = Array.from(
    { length: groups },
    () => WORKLOAD_SPACE.ranks[Math.floor(u.next() * WORKLOAD_SPACE.ranks.length)]!,
  );
  const scale = Number(logUniform(...WORKLOAD_SPACE.lengthScale).toPrecision(3));
  return { rates, ranks, requestLengths: { kind: 'sharegpt', scale } };
}

export async function buildRow(
  profile: Profile,
  seed: number,
  index: number,
  simulate: PointSimulator,
  now: () => number,
): Promise<DatasetRow> {
  const workload = sampleWorkload(seed, index);
  const start = now();
  const result = await searchOptimum(
    profile,
    {
      workload,
      concurrent: DEFAULT_GRID.concurrent,
      parallel: DEFAULT_GRID.parallel,
      durationSeconds: DATASET_DURATION_SECONDS,
      seed: index + 1,
    },
    simulate,
  );
  return {
    index,
    seed,
    durationSeconds: DATASET_DURATION_SECONDS,
    workload,
    features: workloadFeatures(workload, profile),
    optimum: result.best
      ? {
          concurrentAdapters: result.best.concurrentAdapters,
          parallelAdapters: result.best.parallelAdapters,
          throughputTokensPerSecond: result.best.throughputTokensPerSecond,
        }
      : null,
    maxLoraRank: result.maxLoraRank,
    evaluated: result.evaluated
      .filter((e) => e.simulated)
      .map((e) => [
        e.concurrentAdapters,
        e.parallelAdapters,
        Math.round(e.throughputTokensPerSecond * 10) / 10,
        e.feasible && !e.starving ? 1 : 0,
      ]),
    simulations: result.simulations,
    wallMs: now() - start,
  };
}

/**
 * Rows with their features computed by this version's `workloadFeatures`: a row's label depends
 * on the workload alone, so features can change without simulating again.
 */
export function withCurrentFeatures(rows: DatasetRow[], profile: Profile): DatasetRow[] {
  return rows.map((r) => ({ ...r, features: workloadFeatures(r.workload, profile) }));
}

/** Where a profile's committed training set lives. */
export function datasetPath(profile: string): string {
  return join(PACKAGE_ROOT, 'models', 'datasets', `${profile}.jsonl`);
}

/** A dataset file whose rows were not all built with the same seed and window. */
export class MixedDatasetError extends Error {}

/**
 * The rows of a dataset file in index order (none when the file does not exist yet). Throws
 * MixedDatasetError unless every row has the same seed (`expectedSeed` when given) and this build's window:
 * labels from another window describe another optimum.
 */
export function readDataset(path: string, expectedSeed?: number): DatasetRow[] {
  if (!existsSync(path)) return [];
  const rows = readFileSync(path, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as DatasetRow)
    .sort((a, b) => a.index - b.index);
  const seed = expectedSeed ?? rows[0]?.seed;
  const stray = rows.find((r) => r.durationSeconds !== DATASET_DURATION_SECONDS || r.seed !== seed);
  if (stray)
    throw new MixedDatasetError(
      `${path}: workload ${stray.index} was built with seed ${stray.seed ?? 'unknown'} and ` +
        `${stray.durationSeconds ?? 'unknown'} s windows; this build uses ` +
        `seed ${seed} and ${DATASET_DURATION_SECONDS} s. ` +
        'Move the file aside or pass --out.',
    );
  return rows;
}
