import { TTFT_ARRIVAL_REALISATIONS, ttftDependsOnArrivals } from '../latency/index.js';
import { median } from '../stats/index.js';
import type { RunSimulation, SimulationOutcome } from './outcome.js';
import { twinLatencyOf } from './search.js';

/**
 * A simulator whose outcomes carry the TTFT across arrival realisations where one realisation's
 * TTFT is a lottery (ttftDependsOnArrivals): the same scenario is run again with the next seeds
 * (each run cached on its own by `run`) and the median p50 and p99 are attached. Throughput and
 * every other figure stay the scenario's own seed's, so verdicts do not change.
 */
/** Realisations' p99 TTFT this many times apart (highest / lowest) call for as many again. */
export const WIDE_SPREAD_RATIO = 2;

const wideSpread = (all: readonly SimulationOutcome[]) => {
  const p99s = all.map((o) => o.ttftMs.p99).filter((v) => v > 0);
  return p99s.length > 1 && Math.max(...p99s) > WIDE_SPREAD_RATIO * Math.min(...p99s);
};

export function withTtftAcrossArrivals(run: RunSimulation): RunSimulation {
  return async (scenario, profile, starvationThreshold, signal) => {
    const first = await run(scenario, profile, starvationThreshold, signal);
    if (!first.feasible || !ttftDependsOnArrivals(twinLatencyOf(first, scenario.config)))
      return first;
    const others = await Promise.all(
      Array.from({ length: TTFT_ARRIVAL_REALISATIONS - 1 }, (_, k) =>
        // Seeds are uint32: the next ones wrap around.
        run(
          { ...scenario, seed: (scenario.seed + k + 1) >>> 0 },
          profile,
          starvationThreshold,
          signal,
        ),
      ),
    );
    let all: SimulationOutcome[] = [first, ...others];
    // A wide spread is the hour's bursts deciding the p99: more realisations size it better.
    if (wideSpread(all)) {
      const more = await Promise.all(
        Array.from({ length: TTFT_ARRIVAL_REALISATIONS }, (_, k) =>
          run(
            { ...scenario, seed: (scenario.seed + TTFT_ARRIVAL_REALISATIONS + k) >>> 0 },
            profile,
            starvationThreshold,
            signal,
          ),
        ),
      );
      all = [...all, ...more];
    }
    const p99s = all.map((o) => o.ttftMs.p99);
    return {
      ...first,
      ttftAcrossArrivals: {
        p50: median(all.map((o) => o.ttftMs.p50)),
        p99: median(p99s),
        realisations: all.length,
        p99Spread: { low: Math.min(...p99s), high: Math.max(...p99s) },
      },
    };
  };
}
