// Benchmarks of the service's own limits: what one simulation costs in memory per arrived request,
// and how long a page of the run list takes with 100,000 stored runs.
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openDatabase } from '../storage/db.js';
import { median, nearestRankQuantile } from '../stats/index.js';
import { RunRepository, type NewRun } from '../storage/runs.js';

/**
 * Peak resident memory of a fresh process simulating one overloaded hour (8 adapters, 8 slots)
 * at several rates: the slope is the bytes each arrived request costs.
 */
export function simulationMemory(
  rates: number[],
): Array<{ rate: number; arrived: number; maxRssMb: number }> {
  const script = fileURLToPath(new URL('./memory-probe.js', import.meta.url));
  return rates.map((rate) => {
    const r = spawnSync(process.execPath, [script, String(rate)], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`memory probe failed: ${r.stderr}`);
    return JSON.parse(r.stdout) as { rate: number; arrived: number; maxRssMb: number };
  });
}

const run = (i: number): NewRun => ({
  kind: i % 3 === 0 ? 'recommend' : i % 3 === 1 ? 'simulate' : 'check',
  profile: i % 2 ? 'h100-64gb/llama-3.1-8b-instruct' : 'h100-64gb/qwen-2.5-7b-instruct',
  method: i % 3 === 0 ? 'auto' : null,
  verdict: 'ok',
  summary: { concurrentAdapters: 128, parallelAdapters: 32, throughputTokensPerSecond: 8000 + i },
  // A request with a large empirical sample, as in the report that listing stalled on.
  request: {
    workload: {
      requestLengths: {
        kind: 'empirical',
        samples: Array.from({ length: 500 }, (_, k) => [100 + ((i + k) % 900), 50]),
      },
    },
  },
  response: { throughputTokensPerSecond: 8000 + i },
  twinVersion: 'bench',
  modelVersion: null,
  durationMs: 1,
});

/** Median and p99 time of `GET /v1/runs`-equivalent pages over `count` stored runs. */
export async function runListing(count: number): Promise<{
  count: number;
  dbMb: number;
  firstPageMedianMs: number;
  firstPageP99Ms: number;
  deepPageMedianMs: number;
  filteredMedianMs: number;
}> {
  const dir = mkdtempSync(join(tmpdir(), 'loraplan-bench-runs-'));
  const db = openDatabase(join(dir, 'runs.db'));
  const runs = new RunRepository(db);
  for (let i = 0; i < count; i += 1000)
    await Promise.all(
      Array.from({ length: Math.min(1000, count - i) }, (_, k) => runs.insert(run(i + k))),
    );
  const time = (f: () => void, n: number) => {
    const t: number[] = [];
    for (let i = 0; i < n; i++) {
      const s = performance.now();
      f();
      t.push(performance.now() - s);
    }
    return { median: median(t), p99: nearestRankQuantile(t, 0.99) };
  };
  const first = time(() => runs.list({ limit: 200 }), 200);
  let cursor: string | undefined;
  for (let i = 0; i < 100; i++)
    cursor = runs.list({ limit: 200, ...(cursor ? { cursor } : {}) }).nextCursor ?? undefined;
  const deep = time(() => runs.list({ limit: 200, ...(cursor ? { cursor } : {}) }), 200);
  const filtered = time(
    () => runs.list({ limit: 200, kind: 'check', profile: 'h100-64gb/llama-3.1-8b-instruct' }),
    200,
  );
  const dbMb =
    ((db.prepare('PRAGMA page_count').pluck().get() as number) *
      (db.prepare('PRAGMA page_size').pluck().get() as number)) /
    1e6;
  await runs.close();
  db.close();
  return {
    count,
    dbMb,
    firstPageMedianMs: first.median,
    firstPageP99Ms: first.p99,
    deepPageMedianMs: deep.median,
    filteredMedianMs: filtered.median,
  };
}
