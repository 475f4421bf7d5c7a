import { loadModel } from '../model/model.js';
import { loadProfile } from '../profiles/store.js';
import { loadVerdictRuns } from '../profiles/verdicts.js';
import { loadLatencyModel } from '../profiles/latency.js';
import { Recommender } from '../recommend/index.js';
import { CachedSimulator, withTtftAcrossArrivals, type SimulationStore } from '../search/index.js';
import { SimulationPool } from './pool.js';

/** A recommender that runs the twin on a local worker pool, with an in-memory cache. */
export function localRecommender(options: { threads?: number; store?: SimulationStore } = {}) {
  const pool = new SimulationPool(options.threads ? { threads: options.threads } : {});
  const cache = new CachedSimulator(
    (scenario, _profile, starvationThreshold) => pool.run({ scenario, starvationThreshold }),
    {
      ...(options.store ? { store: options.store } : {}),
    },
  );
  // What the service simulates with: TTFT across arrival realisations where one is a lottery.
  const simulate = withTtftAcrossArrivals((s, p, t, signal) => cache.simulate(s, p, t, signal));
  const recommender = new Recommender({
    loadProfile,
    loadModel,
    loadVerdictRuns,
    loadLatencyModel,
    simulate: (scenario, profile, threshold) => simulate(scenario, profile, threshold),
  });
  return { recommender, cache, simulate, pool, close: () => pool.close() };
}
