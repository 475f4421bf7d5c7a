import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { buildRow } from '../model/dataset.js';
import { PACKAGE_ROOT, loadProfile } from '../profiles/store.js';
import { SimulationPool } from '../runtime/pool.js';
import { LocalRedis } from '../runtime/local-redis.js';
import { QueueRunner } from '../runtime/queue.js';
import type { TwinRunner } from '../runtime/runner.js';
import { DEFAULT_GRID, searchOptimum } from '../search/index.js';
import { median } from '../stats/index.js';
import { scenarioSchema } from '../twin/index.js';

/**
 * npm run bench:scale: the same twin search, a dataset build and a run of tiny jobs, on the
 * in-process pool and on the queue backend with 1, 2 and 4 `loraplan worker` processes (one
 * simulation at a time each) on one Redis, all started here. Writes docs/scale/bench.md.
 * `--workloads N` sets the dataset size (50 by default; each workload is one optimum search).
 */
const PROFILE = 'h100-64gb/llama-3.1-8b-instruct';
const WORKER_COUNTS = [1, 2, 4];
const TINY_JOBS = 100;

async function until(check: () => Promise<boolean>, what: string) {
  for (let i = 0; i < 400; i++) {
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

interface Timings {
  searchSeconds: number;
  datasetSeconds: number;
  tinyJobMedianMs: number;
}

async function measure(runner: TwinRunner, workloads: number): Promise<Timings> {
  const profile = loadProfile(PROFILE);
  const simulate = (s: Parameters<TwinRunner['run']>[0]['scenario'], _p: unknown, t: number) =>
    runner.run({ scenario: s, starvationThreshold: t });
  let t = performance.now();
  await searchOptimum(
    profile,
    {
      workload: { rates: [0.4, 0.05, 0.0125], ranks: [8, 16, 16] },
      concurrent: DEFAULT_GRID.concurrent,
      parallel: DEFAULT_GRID.parallel,
    },
    simulate,
  );
  const searchSeconds = (performance.now() - t) / 1000;
  t = performance.now();
  let next = 0;
  const builder = async () => {
    while (next < workloads) {
      const index = next++;
      await buildRow(profile, 99, index, simulate, () => performance.now());
    }
  };
  await Promise.all(Array.from({ length: 16 }, builder));
  const datasetSeconds = (performance.now() - t) / 1000;
  // Round trips of simulations that take about a millisecond: what a job costs beyond its work.
  const times: number[] = [];
  for (let i = 0; i < TINY_JOBS; i++) {
    const scenario = scenarioSchema.parse({
      profile: PROFILE,
      config: { maxLoras: 1, maxCpuLoras: 1, maxLoraRank: 8 },
      workload: { rates: [0.5], ranks: [8] },
      durationSeconds: 2,
      seed: i + 1,
    });
    const s = performance.now();
    await runner.run({ scenario, starvationThreshold: 0.1 });
    times.push(performance.now() - s);
  }
  return { searchSeconds, datasetSeconds, tinyJobMedianMs: median(times) };
}

async function main() {
  const { values } = parseArgs({ options: { workloads: { type: 'string', default: '50' } } });
  const workloads = Number(values.workloads);
  const dir = mkdtempSync(join(tmpdir(), 'loraplan-scale-'));
  const redis = await LocalRedis.start(dir);
  const url = redis.url;
  const admin = new Redis(url, { maxRetriesPerRequest: null });
  admin.on('error', () => undefined);
  const rows: Array<{ backend: string } & Timings> = [];
  try {
    const pool = new SimulationPool();
    rows.push({
      backend: `in-process pool (${pool.threads} threads)`,
      ...(await measure(pool, workloads)),
    });
    await pool.close();
    process.stderr.write(`in-process pool done\n`);
    for (const count of WORKER_COUNTS) {
      // Each configuration starts from an empty Redis: no results left from the one before.
      await admin.flushall();
      const workers: ChildProcess[] = Array.from({ length: count }, (_, i) =>
        spawn(
          process.execPath,
          [
            join(PACKAGE_ROOT, 'bin', 'loraplan.js'),
            'worker',
            '--redis',
            url,
            '--concurrency',
            '1',
            '--name',
            `w${i}`,
          ],
          { stdio: 'ignore' },
        ),
      );
      const runner = new QueueRunner(url);
      try {
        await runner.started();
        await until(
          async () =>
            (await runner.stats()).workers !== undefined && (await runner.notReady()) === undefined,
          'workers',
        );
        rows.push({
          backend: `queue, ${count} worker process${count > 1 ? 'es' : ''}`,
          ...(await measure(runner, workloads)),
        });
        process.stderr.write(`${count} workers done\n`);
      } finally {
        await runner.close();
        for (const w of workers) w.kill('SIGTERM');
      }
    }
  } finally {
    admin.disconnect();
    await redis.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  const base = rows[0]!;
  const lines = [
    `| backend | search s | speed-up | ${workloads}-workload dataset s | speed-up | one tiny job, median ms | overhead per job vs in-process, ms |`,
    '|---|---:|---:|---:|---:|---:|---:|',
    ...rows.map(
      (r) =>
        `| ${r.backend} | ${r.searchSeconds.toFixed(1)} | ${(base.searchSeconds / r.searchSeconds).toFixed(2)}× | ${r.datasetSeconds.toFixed(1)} | ${(base.datasetSeconds / r.datasetSeconds).toFixed(2)}× | ${r.tinyJobMedianMs.toFixed(2)} | ${(r.tinyJobMedianMs - base.tinyJobMedianMs).toFixed(2)} |`,
    ),
  ];
  const out = join(PACKAGE_ROOT, 'docs', 'scale');
  mkdirSync(out, { recursive: true });
  writeFileSync(
    join(out, 'bench.md'),
    `<!-- written by npm run bench:scale -- --workloads ${workloads} on ${new Date().toISOString().slice(0, 10)} -->\n\n${lines.join('\n')}\n`,
  );
  process.stdout.write(`${lines.join('\n')}\n`);
}

void main();
