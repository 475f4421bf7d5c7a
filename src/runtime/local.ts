import { loadModel } from '../model/model.js';
import { loadProfile } from '../profiles/store.js';
import { evidenceOf } from '../twin/profile.js';
import { loadVerdictRuns } from '../profiles/verdicts.js';
import { loadLatencyModel } from '../profiles/latency.js';
import { Recommender } from '../recommend/index.js';
import { CachedSimulator, type SimulationStore } from '../search/index.js';
import { SimulationPool } from './pool.js';

/** A recommender that runs the twin on a local worker pool, with an in-memory cache. */
export function localRecommender(options: { threads?: number; store?: SimulationStore } = {}) {
  const pool = new SimulationPool(options.threads ? { threads: options.threads } : {});
  const cache = new CachedSimulator(
    // Shipped profiles are read by id in the worker; a derived one travels with the task.
    (scenario, profile, starvationThreshold) =>
      pool.run(
        evidenceOf(profile) === 'measured'
          ? { scenario, starvationThreshold }
          : { scenario, starvationThreshold, profile },
      ),
    {
      ...(options.store ? { store: options.store } : {}),
    },
  );
  const recommender = new Recommender({
    loadProfile,
    loadModel,
    loadVerdictRuns,
    loadLatencyModel,
    simulate: (scenario, profile, threshold) => cache.simulate(scenario, profile, threshold),
    simulateAcrossArrivals: (scenario, profile, threshold) =>
      cache.simulateAcrossArrivals(scenario, profile, threshold),
  });
  return { recommender, cache, pool, close: () => pool.close() };
}
