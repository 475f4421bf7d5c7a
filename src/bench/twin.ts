import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { readServingRuns } from '../calibrate/runs.js';
import { loadProfile, PACKAGE_ROOT } from '../profiles/store.js';
import { median, nearestRankQuantile } from '../stats/index.js';
import { scenarioSchema, simulate, type Scenario } from '../twin/index.js';

export interface TwinBench {
  runs: number;
  medianWallMs: number;
  p90WallMs: number;
  maxWallMs: number;
  under1s: string;
  slowest: string;
  simulatedSecondsPerWallSecond: number;
  heaviest: { run: string; wallMs: number; engineSteps: number; arrivedRequests: number };
}

function timeOne(scenario: Scenario, now: () => number) {
  const profile = loadProfile(scenario.profile);
  const start = now();
  const result = simulate(scenario, profile);
  return { wallMs: now() - start, result };
}

/** Times the twin on every validation run, one at a time on this thread, plus the heaviest run. */
export function benchTwin(
  dataDir: string,
  now: () => number = () => performance.now(),
  limit?: number,
): TwinBench {
  const runs = readServingRuns(dataDir).slice(0, limit);
  // Warm up the JIT on one run so the first timing is not a compile.
  timeOne(runs[0]!.scenario, now);
  const timings = runs.map((r) => ({
    label: `${r.model} ${r.workload} ${r.run}`,
    ...timeOne(r.scenario, now),
  }));
  const walls = timings.map((t) => t.wallMs).sort((a, b) => a - b);
  const simulated = runs.reduce((s, r) => s + r.scenario.durationSeconds, 0);
  const slowest = timings.reduce((a, b) => (b.wallMs > a.wallMs ? b : a));
  const offered = (s: Scenario) =>
    (s.workload.rates ?? []).reduce(
      (sum, rate, i, all) => sum + rate * Math.ceil((s.workload.adapterCount ?? 0) / all.length),
      0,
    );
  const heaviest = runs.reduce((a, b) => (offered(b.scenario) > offered(a.scenario) ? b : a));
  const h = timeOne(heaviest.scenario, now);
  return {
    runs: runs.length,
    medianWallMs: median(walls),
    p90WallMs: nearestRankQuantile(walls, 0.9),
    maxWallMs: walls[walls.length - 1]!,
    under1s: `${walls.filter((w) => w < 1000).length} of ${walls.length}`,
    slowest: slowest.label,
    simulatedSecondsPerWallSecond: simulated / (walls.reduce((s, w) => s + w, 0) / 1000),
    heaviest: {
      run: `${heaviest.model} ${heaviest.workload} ${heaviest.run}`,
      wallMs: h.wallMs,
      engineSteps: h.result.engineSteps,
      arrivedRequests: h.result.arrivedRequests,
    },
  };
}

const publishedCasesSchema = z.object({
  profile: z.string(),
  durationSeconds: z.number().positive(),
  maxLoraRank: z.number().int().positive(),
  cases: z.array(
    z.object({
      id: z.string(),
      rates: z.array(z.number().nonnegative()),
      ranks: z.array(z.number().int().positive()),
      maxCpuLoras: z.number().int().positive(),
      maxLoras: z.number().int().positive(),
      publishedSeconds: z.number().positive(),
    }),
  ),
});

export interface TwinCase {
  id: string;
  label: string;
  publishedSeconds: number;
  medianWallMs: number;
  ratio: number;
  engineSteps: number;
  arrivedRequests: number;
}

/**
 * The four cases against the published twin's times (models/bench/): one warm-up run of
 * each, then `rounds` rounds of the four interleaved on this thread, reported as medians.
 */
export function benchTwinCases(
  rounds = 7,
  now: () => number = () => performance.now(),
): TwinCase[] {
  const file = publishedCasesSchema.parse(
    JSON.parse(
      readFileSync(join(PACKAGE_ROOT, 'models', 'bench', 'published-twin-cases.json'), 'utf8'),
    ),
  );
  const profile = loadProfile(file.profile);
  const cases = file.cases.map((c) => {
    const scenario = scenarioSchema.parse({
      profile: file.profile,
      config: { maxLoras: c.maxLoras, maxCpuLoras: c.maxCpuLoras, maxLoraRank: file.maxLoraRank },
      workload: { rates: c.rates, ranks: c.ranks },
      durationSeconds: file.durationSeconds,
      seed: 1,
    });
    return { c, scenario, first: simulate(scenario, profile), walls: [] as number[] };
  });
  for (let round = 0; round < rounds; round++) {
    for (const k of cases) {
      const start = now();
      simulate(k.scenario, profile);
      k.walls.push(now() - start);
    }
  }
  return cases.map(({ c, first, walls }) => {
    const medianWallMs = median(walls);
    return {
      id: c.id,
      label: `rates ${c.rates.join('/')}, ranks ${c.ranks.join('/')}, ${c.maxCpuLoras} adapters, ${c.maxLoras} slots${first.starving ? ' (overloaded)' : ''}`,
      publishedSeconds: c.publishedSeconds,
      medianWallMs,
      ratio: (c.publishedSeconds * 1000) / medianWallMs,
      engineSteps: first.engineSteps,
      arrivedRequests: first.arrivedRequests,
    };
  });
}
