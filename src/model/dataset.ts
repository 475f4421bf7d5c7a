import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PACKAGE_ROOT } from '../profiles/store.js';
import {
  DEFAULT_GRID,
  searchOptimum,
  type PointSimulator,
  type SearchWorkload,
} from '../search/index.js';
import { TWIN_VERSION } from '../twin/index.js';
import { seededStream } from '../twin/random.js';
import { vllmStarts, type Profile } from '../twin/profile.js';
import { workloadFeatures } from './features.js';

/** The ranges of the first 300 training workloads (at least the published ones). */
export const WORKLOAD_SPACE = {
  groups: [1, 5],
  rate: [0.003125, 3.2],
  ranks: [8, 16, 32],
  lengthScale: [0.5, 2],
} as const;

/**
 * Workloads from this index on are drawn from a wider space, so the forests' envelope covers what
 * users send: ranks up to the largest that leaves room for one sequence at the grid's fewest slots,
 * rates from very light to overloaded on a handful of adapters, and all three request-length kinds.
 * Earlier rows keep their workloads, so the committed sets are resumed rather than rebuilt.
 */
export const WIDENED_FROM_INDEX = 300;
export const WIDE_WORKLOAD_SPACE = {
  groups: [1, 5],
  rate: [0.001, 6.4],
  lengthScale: [0.25, 4],
  /** Fixed lengths: prompt and output tokens, log-uniform. */
  fixedPrompt: [16, 4096],
  fixedOutput: [8, 2048],
  /** Empirical lengths: this many log-normal draws per workload. */
  empiricalSamples: 32,
} as const;

/** Ranks a workload may use on this profile: allowed, and one sequence still fits beside the fewest slots. */
export function trainableRanks(profile: Profile): number[] {
  const fewestSlots = Math.min(...DEFAULT_GRID.parallel);
  return [...profile.allowedLoraRanks]
    .sort((a, b) => a - b)
    .filter((r) => vllmStarts(profile, fewestSlots, r));
}

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
  /** The twin whose optimum labels the row: another twin's optimum is another label. */
  twinVersion: string;
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
export function sampleWorkload(seed: number, index: number, profile: Profile): SearchWorkload {
  const u = seededStream((seed * 1_000_003 + index) | 0, 100);
  const logUniform = (lo: number, hi: number) =>
    Math.exp(Math.log(lo) + u.next() * (Math.log(hi) - Math.log(lo)));
  const pick = <T>(values: readonly T[]) => values[Math.floor(u.next() * values.length)]!;
  const wide = index >= WIDENED_FROM_INDEX;
  const space = wide ? WIDE_WORKLOAD_SPACE : WORKLOAD_SPACE;
  const [gMin, gMax] = space.groups;
  const groups = gMin + Math.floor(u.next() * (gMax - gMin + 1));
  const rates = Array.from({ length: groups }, () =>
    Number(logUniform(space.rate[0], space.rate[1]).toPrecision(4)),
  );
  // Wide ranks lean small (u squared), as users' do, while every trainable rank stays reachable.
  const wideRanks = trainableRanks(profile);
  const ranks = Array.from({ length: groups }, () =>
    wide ? wideRanks[Math.floor(u.next() ** 2 * wideRanks.length)]! : pick(WORKLOAD_SPACE.ranks),
  );
  if (!wide) {
    const scale = Number(logUniform(...WORKLOAD_SPACE.lengthScale).toPrecision(3));
    return { rates, ranks, requestLengths: { kind: 'sharegpt', scale } };
  }
  const kind = u.next();
  const tokens = (lo: number, hi: number) => Math.max(1, Math.round(logUniform(lo, hi)));
  if (kind < 0.5) {
    const scale = Number(logUniform(...WIDE_WORKLOAD_SPACE.lengthScale).toPrecision(3));
    return { rates, ranks, requestLengths: { kind: 'sharegpt', scale } };
  }
  const longest = profile.maxModelLen;
  const pair = (): [number, number] => {
    const input = tokens(...WIDE_WORKLOAD_SPACE.fixedPrompt);
    const output = Math.min(tokens(...WIDE_WORKLOAD_SPACE.fixedOutput), longest - input);
    return [input, Math.max(1, output)];
  };
  if (kind < 0.75) {
    const [input, output] = pair();
    return { rates, ranks, requestLengths: { kind: 'fixed', input, output } };
  }
  const samples = Array.from({ length: WIDE_WORKLOAD_SPACE.empiricalSamples }, pair);
  return { rates, ranks, requestLengths: { kind: 'empirical', samples } };
}

export async function buildRow(
  profile: Profile,
  seed: number,
  index: number,
  simulate: PointSimulator,
  now: () => number,
): Promise<DatasetRow> {
  const workload = sampleWorkload(seed, index, profile);
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
    twinVersion: TWIN_VERSION,
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
 * MixedDatasetError unless every row has the same seed (`expectedSeed` when given), this build's
 * window and this build's twin: labels from another window or another twin describe another
 * optimum, and a forest trained on them would answer for a twin the service does not run.
 */
export function readDataset(path: string, expectedSeed?: number): DatasetRow[] {
  if (!existsSync(path)) return [];
  const rows = readFileSync(path, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as DatasetRow)
    .sort((a, b) => a.index - b.index);
  const seed = expectedSeed ?? rows[0]?.seed;
  const otherTwin = rows.find((r) => r.twinVersion !== TWIN_VERSION);
  if (otherTwin)
    throw new MixedDatasetError(
      `${path}: workload ${otherTwin.index} was labelled by twin ${otherTwin.twinVersion ?? '(unrecorded)'}; ` +
        `this build runs twin ${TWIN_VERSION}. Rebuild the set (move the file aside or pass --out).`,
    );
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
