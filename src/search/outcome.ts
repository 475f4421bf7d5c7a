// What one simulation yields where the search, its cache and the arrival realisations meet: its
// own module, so that none of the three imports another for its types.
import type { Profile, Scenario, SimulationResult } from '../twin/index.js';

export type SimulationOutcome = Omit<SimulationResult, 'wallTimeMs'> & {
  wallTimeMs?: number;
  /**
   * The median p50 and p99 TTFT over several arrival realisations (the scenario's seed and the
   * next ones), where one realisation's TTFT is a lottery (src/search/arrivals.ts). Never stored:
   * each realisation is cached on its own.
   */
  ttftAcrossArrivals?: {
    p50: number;
    p99: number;
    realisations: number;
    /** The lowest and highest p99 over the realisations: the hour's bursts, as a range. */
    p99Spread?: { low: number; high: number };
  };
};
export type RunSimulation = (
  scenario: Scenario,
  profile: Profile,
  starvationThreshold: number,
  signal?: AbortSignal,
) => Promise<SimulationOutcome>;
