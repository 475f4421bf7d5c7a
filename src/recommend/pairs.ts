// Pieces every method's answer shares: the flags it emits, the slot counts vLLM starts with, the
// adapter counts on a line of slots, and the refusal when no pair serves.
import type { OutsideFeature } from '../envelope/index.js';
import { sortedUnique, type EvaluatedPoint } from '../search/index.js';
import { LIMITS, vllmStarts, type Profile } from '../twin/index.js';
import type { RecommendResponse } from './schema.js';

/** No configuration on the candidate grid serves the workload (HTTP 422, CLI exit 1). */
export class NoServingConfigurationError extends Error {
  constructor(
    message: string,
    readonly evaluated: EvaluatedPoint[],
  ) {
    super(message);
  }
}

export const vllmArgs = (concurrent: number, parallel: number, rank: number): string[] => [
  '--enable-lora',
  `--max-loras=${parallel}`,
  `--max-cpu-loras=${concurrent}`,
  `--max-lora-rank=${rank}`,
];

export const fmt = (v: number) => Math.round(v).toLocaleString('en-US');
const startableCache = new WeakMap<Profile, Map<number, number>>();

/**
 * The most slots of this rank vLLM starts with: slot counts up to it all leave the KV cache room
 * for one max_model_len sequence (the closed-form start-up check the twin applies).
 */
export function startableSlots(profile: Profile, maxLoraRank: number): number {
  let byRank = startableCache.get(profile);
  if (!byRank) startableCache.set(profile, (byRank = new Map()));
  const hit = byRank.get(maxLoraRank);
  if (hit !== undefined) return hit;
  let slots = 0;
  while (slots < LIMITS.maxAdapters && vllmStarts(profile, slots + 1, maxLoraRank)) slots++;
  byRank.set(maxLoraRank, slots);
  return slots;
}

/** Adapter counts below `concurrent` on the line of `parallel` slots, nearest first. */
export function lowerOnLine(
  candidates: readonly number[],
  concurrent: number,
  parallel: number,
): number[] {
  return sortedUnique(candidates)
    .filter((v) => v < concurrent && v >= parallel)
    .reverse();
}

/** The largest adapter count below `above` that does not have to starve (load grows with adapters). */
export function largestServable(
  above: number,
  servable: (c: number) => boolean,
): number | undefined {
  if (!servable(1)) return undefined;
  let lo = 1;
  let hi = above;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (servable(mid)) lo = mid;
    else hi = mid;
  }
  return lo;
}

export function envelopeFields(
  outside: OutsideFeature[] | undefined,
): Pick<RecommendResponse, 'envelope' | 'outsideEnvelope'> {
  if (outside === undefined) return {};
  return outside.length
    ? { envelope: 'outside', outsideEnvelope: outside }
    : { envelope: 'inside' };
}
