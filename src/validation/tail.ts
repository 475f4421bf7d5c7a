// Where the twin's ITL tail comes from: for each run, the steps at or above the run's p99 ITL
// (weighted by the decode tokens they emit, as the client's ITL list is), split by cause.
import type { Profile, Scenario, StepComponents } from '../twin/index.js';
import { simulate } from '../twin/index.js';

export const CAUSES: Array<keyof StepComponents> = [
  'decodeMs',
  'prefillMs',
  'recomputeMs',
  'loraMs',
  'schedulerMs',
  'adapterLoadMs',
];

export interface TailShares {
  /** Share of the tail steps' time by cause; sums to 1. */
  shares: Record<keyof StepComponents, number>;
  /** The same for all decode steps, for contrast. */
  typical: Record<keyof StepComponents, number>;
}

export function tailShares(scenario: Scenario, profile: Profile): TailShares {
  const steps: Array<{ ms: number; decodes: number; parts: StepComponents }> = [];
  simulate(scenario, profile, {
    stepTimeObserver: (v) => {
      if (v.decodeSeqs > 0)
        steps.push({ ms: v.durationMs, decodes: v.decodeSeqs, parts: v.components });
    },
  });
  const total = steps.reduce((s, x) => s + x.decodes, 0);
  const sorted = [...steps].sort((a, b) => b.ms - a.ms);
  // The slowest steps carrying the top 1% of decode tokens: the p99 ITL and above.
  const tail: typeof steps = [];
  let seen = 0;
  for (const x of sorted) {
    if (seen >= 0.01 * total) break;
    tail.push(x);
    seen += x.decodes;
  }
  const share = (set: typeof steps) => {
    const sums = Object.fromEntries(CAUSES.map((c) => [c, 0])) as Record<
      keyof StepComponents,
      number
    >;
    let all = 0;
    for (const x of set) {
      for (const c of CAUSES) sums[c] += x.decodes * x.parts[c];
      all += x.decodes * x.ms;
    }
    for (const c of CAUSES) sums[c] = all > 0 ? sums[c] / all : 0;
    return sums;
  };
  return { shares: share(tail), typical: share(steps) };
}
