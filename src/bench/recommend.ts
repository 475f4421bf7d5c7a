import { datasetPath, readDataset } from '../model/dataset.js';
import { workloadFeatures } from '../model/features.js';
import { predict } from '../model/forest.js';
import { loadModel, localExplanation, predictWorkload } from '../model/model.js';
import { loadProfile } from '../profiles/store.js';
import type { RecommendRequest } from '../recommend/index.js';
import { localRecommender } from '../runtime/local.js';
import { SimulationPool } from '../runtime/pool.js';
import { MEASURED_GRID, searchOptimum } from '../search/index.js';
import { median, nearestRankQuantile } from '../stats/index.js';

/** Median time of one forest prediction (three forests and the features), over many workloads. */
export function benchForest(profileId: string, now: () => number = () => performance.now()) {
  const profile = loadProfile(profileId);
  const t0 = now();
  const model = loadModel(profileId);
  const loadMs = now() - t0;
  const rows = readDataset(datasetPath(profileId));
  const times: number[] = [];
  for (let rep = 0; rep < 5; rep++) {
    for (const row of rows) {
      const s = now();
      predictWorkload(model, workloadFeatures(row.workload, profile));
      times.push(now() - s);
    }
  }
  // The explanation (each feature moved to its median), and what it cost when each moved row was
  // walked through both forests from the root.
  const explained: number[] = [];
  const walkedPerRow: number[] = [];
  for (const row of rows) {
    const x = workloadFeatures(row.workload, profile);
    let s = now();
    localExplanation(model, x);
    explained.push(now() - s);
    s = now();
    for (let f = 0; f < x.length; f++) {
      const moved = [...x];
      moved[f] = model.featureMedians[f]!;
      predict(model.targets.concurrent.forest, moved);
      predict(model.targets.parallel.forest, moved);
    }
    walkedPerRow.push(now() - s);
  }
  return {
    loadMs,
    predictions: times.length,
    medianMs: median(times),
    p99Ms: nearestRankQuantile(times, 0.99),
    explanationMedianMs: median(explained),
    walkedPerRowMedianMs: median(walkedPerRow),
  };
}

/**
 * A full twin search over the 10 x 10 measured grid, on a worker pool of all cores: cold, or
 * started near the forest's answer as method twin does.
 */
export async function benchSearch(
  profileId: string,
  rates: number[],
  ranks: number[],
  fromForest: boolean,
  now: () => number = () => performance.now(),
) {
  const profile = loadProfile(profileId);
  const pool = new SimulationPool();
  try {
    const t = now();
    const startNear = fromForest
      ? predictWorkload(loadModel(profileId), workloadFeatures({ rates, ranks }, profile))
          .concurrentAdapters
      : undefined;
    const r = await searchOptimum(
      profile,
      {
        workload: { rates, ranks },
        concurrent: MEASURED_GRID,
        parallel: MEASURED_GRID,
        ...(startNear !== undefined ? { startNear } : {}),
      },
      (s) => pool.run({ scenario: s }),
    );
    return {
      wallMs: now() - t,
      simulations: r.simulations,
      best: r.best ? `${r.best.concurrentAdapters} x ${r.best.parallelAdapters}` : 'none',
    };
  } finally {
    await pool.close();
  }
}

/** What building the training set cost, from the rows' own timings. */
export function datasetCost(profileId: string) {
  const rows = readDataset(datasetPath(profileId));
  const wallMs = rows.reduce((s, r) => s + r.wallMs, 0);
  const simulations = rows.reduce((s, r) => s + r.simulations, 0);
  return { workloads: rows.length, simulations, coreHours: wallMs / 3.6e6 };
}

/**
 * One `/v1/recommend` answer on the default grid from a cold cache, on a worker pool of all cores:
 * what a new workload costs with and without an SLO.
 */
export async function benchRecommend(
  request: Pick<RecommendRequest, 'profile' | 'workload' | 'method' | 'slo'>,
  options: { warmUp?: boolean } = {},
  now: () => number = () => performance.now(),
) {
  const local = localRecommender();
  try {
    // Warmed: as the service's threads are after start-up (LORAPLAN_WARM_UP); nothing of this
    // workload is cached either way.
    if (options.warmUp) await local.pool.warmUp();
    const t = now();
    const r = await local.recommender.recommend({
      starvationThreshold: 0.1,
      objective: 'paper',
      ...request,
    });
    return {
      wallMs: now() - t,
      evaluated: r.evaluated.filter((e) => e.simulated).length,
      pair: `${r.recommendation.concurrentAdapters} x ${r.recommendation.parallelAdapters}`,
      throughput: r.recommendation.throughputTokensPerSecond,
    };
  } finally {
    await local.close();
  }
}
