import { appendFileSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { SingleBar } from 'cli-progress';
import { buildRow, datasetPath, readDataset } from '../model/dataset.js';
import { loadProfile } from '../profiles/store.js';
import { SimulationPool } from '../runtime/pool.js';
import type { TwinRunner } from '../runtime/runner.js';
import { intOption, parseOptions, UsageError } from './options.js';

const USAGE = `usage: loraplan dataset --profile P --workloads N [--seed S] [--out FILE] [--concurrency K]

Samples N workloads (seed S, default 1), finds each one's optimum with the twin and appends one
JSON line per workload to FILE (default models/datasets/<profile>.jsonl). Resumable: workloads
already in FILE are skipped, so an interrupted run continues where it stopped; a FILE built with
another seed, window or twin version is refused rather than mixed. With
LORAPLAN_REDIS_URL set, the simulations run as queue jobs on \`loraplan worker\` processes
(K defaults to 16 workloads in flight, else 2); the rows are the same as a local build's.`;

export async function datasetCommand(argv: string[]): Promise<number> {
  const { values } = parseOptions(argv, {
    profile: { type: 'string' },
    workloads: { type: 'string' },
    seed: { type: 'string' },
    out: { type: 'string' },
    concurrency: { type: 'string' },
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (!values.profile) throw new UsageError(`--profile is required\n${USAGE}`);
  const profile = loadProfile(values.profile);
  const n = intOption(values.workloads, '--workloads');
  if (n === undefined) throw new UsageError('--workloads must be a positive integer');
  const seed = intOption(values.seed, '--seed') ?? 1;
  // With LORAPLAN_REDIS_URL the searches' simulations become queue jobs for `loraplan worker`
  // processes: more workloads in flight keep more workers busy. Rows are the same either way.
  const redisUrl = process.env.LORAPLAN_REDIS_URL;
  const concurrency = intOption(values.concurrency, '--concurrency') ?? (redisUrl ? 16 : 2);
  const out = values.out ?? datasetPath(profile.id);
  mkdirSync(dirname(out), { recursive: true });
  const done = new Set(readDataset(out, seed).map((r) => r.index));
  const todo = Array.from({ length: n }, (_, i) => i).filter((i) => !done.has(i));
  process.stderr.write(
    `${profile.id}: ${n - todo.length} of ${n} workloads already in ${out}, ${todo.length} to go\n`,
  );

  const runner: TwinRunner = redisUrl
    ? new (await import('../runtime/queue.js')).QueueRunner(redisUrl)
    : new SimulationPool();
  const bar = process.stderr.isTTY
    ? new SingleBar({
        format:
          'dataset [{bar}] {value}/{total} workloads | {duration_formatted} elapsed | ETA {eta_formatted}',
        stream: process.stderr,
        etaBuffer: 20,
      })
    : null;
  bar?.start(todo.length, 0);
  const started = performance.now();
  let finished = 0;
  try {
    let next = 0;
    const worker = async () => {
      while (next < todo.length) {
        const index = todo[next++]!;
        const row = await buildRow(
          profile,
          seed,
          index,
          (s) => runner.run({ scenario: s }),
          () => performance.now(),
        );
        // One whole line per workload, appended as it finishes: an interruption loses at most the
        // workloads in flight, and the next run redoes only those.
        appendFileSync(out, `${JSON.stringify(row)}\n`);
        finished++;
        bar?.increment();
        if (!bar && finished % 10 === 0) {
          const elapsed = (performance.now() - started) / 1000;
          const eta = (elapsed / finished) * (todo.length - finished);
          process.stderr.write(
            `  ${finished}/${todo.length} workloads, ${elapsed.toFixed(0)} s elapsed, ETA ${eta.toFixed(0)} s\n`,
          );
        }
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
  } finally {
    bar?.stop();
    await runner.close();
  }
  process.stderr.write(
    `${profile.id}: built ${finished} workloads in ${((performance.now() - started) / 1000).toFixed(1)} s\n`,
  );
  return 0;
}
