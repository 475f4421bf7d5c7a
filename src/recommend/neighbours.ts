// The last check of a `model` answer, in microseconds and without a simulation: its pair against
// the pairs next to it on the grid. With a forest trained by this version, the chance each pair
// serves (src/model/serves.ts) decides; with an older one, the closed-form steady state's verdict.
import {
  servesFeaturesOf,
  servesProbability,
  SERVES_STEP_BACK_BELOW,
  SERVES_STEP_UP_FROM,
  type ServesModel,
} from '../model/serves.js';
import { estimatePair, lengthsFor, type SearchWorkload } from '../search/index.js';
import type { Profile } from '../twin/index.js';

/** The candidates a neighbour is taken from: the request's own, or the default grid's. */
export interface NeighbourGrid {
  concurrent: readonly number[];
  /** Only slot counts vLLM starts with. */
  parallel: readonly number[];
  /** The request named its slot candidates: a neighbour's slots are one of them. */
  parallelGiven: boolean;
}

/** A neighbour the check prefers, with what it read at both pairs. */
export interface Neighbour {
  c: number;
  p: number;
  /** The check's figure at the neighbour and at the answer: a chance, or a completion ratio. */
  here: number;
  there: number;
  /** Tokens per second the neighbour is priced at. */
  throughput: number;
  reading: 'chance' | 'completion';
}

/**
 * Two adapter steps down on the same slots (never more slots than adapters; a request's own slot
 * candidates kept to), and one slot step down or up for the same adapters.
 */
export function neighboursOf(c: number, p: number, grid: NeighbourGrid): Array<[number, number]> {
  const fewer = [...grid.concurrent]
    .filter((v) => v < c)
    .reverse()
    .slice(0, 2);
  const lowerSlots = [...grid.parallel].filter((v) => v < p).reverse()[0];
  const higherSlots = grid.parallel.find((v) => v > p && v <= c);
  const slotsFor = (v: number) =>
    grid.parallelGiven
      ? [...grid.parallel].reverse().find((s) => s <= Math.min(p, v))
      : Math.min(p, v);
  const pairs: Array<[number, number]> = [];
  for (const v of fewer) {
    const slots = slotsFor(v);
    if (slots !== undefined) pairs.push([v, slots]);
  }
  if (lowerSlots !== undefined) pairs.push([c, lowerSlots]);
  if (higherSlots !== undefined) pairs.push([c, higherSlots]);
  return pairs;
}

/**
 * With the chance each pair serves: where the answer's is below SERVES_STEP_BACK_BELOW, or where
 * one adapter step up is given at least SERVES_STEP_UP_FROM, the pair with the most throughput
 * among those given at least SERVES_STEP_BACK_BELOW (the likeliest to serve when none is). Pairs
 * are priced at what their adapters offer (up to the capacity bound, `price`); the answer's own
 * slot neighbours offer the same, and on that tie the answer stays. `mayOffer` rules out adapter
 * counts the capacity bound says must starve.
 */
export function servesCheck(
  chanceAt: (c: number, p: number) => number,
  c: number,
  p: number,
  grid: NeighbourGrid,
  price: (c: number) => number,
  mayOffer: (c: number) => boolean,
): Neighbour | undefined {
  const here = { c, p, chance: chanceAt(c, p), price: price(c) };
  const up = grid.concurrent.find((v) => v > c);
  const candidates = neighboursOf(c, p, grid).map(([cc, pp]) => ({
    c: cc,
    p: pp,
    chance: chanceAt(cc, pp),
    price: price(cc),
  }));
  if (up !== undefined && mayOffer(up)) {
    const chance = chanceAt(up, p);
    if (chance >= SERVES_STEP_UP_FROM) candidates.push({ c: up, p, chance, price: price(up) });
  }
  const likely = [here, ...candidates].filter((s) => s.chance >= SERVES_STEP_BACK_BELOW);
  // Pairs of the same adapters offer the same load: a slot step is taken only for the chance.
  const pick = likely.length
    ? likely.reduce((a, b) =>
        b.price > a.price || (b.price === a.price && a !== here && b.chance > a.chance) ? b : a,
      )
    : candidates.reduce((a, b) => (b.chance > a.chance ? b : a), here);
  if (pick === here) return undefined;
  return {
    c: pick.c,
    p: pick.p,
    here: here.chance,
    there: pick.chance,
    throughput: pick.price,
    reading: 'chance',
  };
}

/**
 * After servesCheck: undefined where the answer is given at least SERVES_STEP_BACK_BELOW, or the
 * grid's fewest adapters are on some slot count it holds; else both chances, for the refusal.
 */
export function nothingLikely(
  chanceAt: (c: number, p: number) => number,
  c: number,
  p: number,
  grid: NeighbourGrid,
): { here: number; fewest: number; atFewest: number } | undefined {
  const here = chanceAt(c, p);
  if (here >= SERVES_STEP_BACK_BELOW) return undefined;
  // The grid's fewest adapters vLLM starts with on some slot count (max_loras <= max_cpu_loras),
  // or the answer's own where it has fewer still (a forest answer off the grid).
  const fewestSlots = grid.parallel[0];
  const gridFewest = grid.concurrent.find((v) => fewestSlots !== undefined && v >= fewestSlots);
  const fewest = gridFewest === undefined ? c : Math.min(c, gridFewest);
  const gridSlots = grid.parallel.filter((v) => v <= fewest);
  const slots = gridSlots.length > 0 ? gridSlots : [Math.min(p, fewest)];
  const atFewest = Math.max(...slots.map((v) => chanceAt(fewest, v)));
  return atFewest >= SERVES_STEP_BACK_BELOW ? undefined : { here, fewest, atFewest };
}

/**
 * The chance `serves` gives a pair of this workload, from the closed-form estimate's figures.
 * Each pair is read once: the neighbour check and the refusal after it ask for the same pairs.
 */
export function chanceOfServing(
  serves: ServesModel,
  profile: Profile,
  workload: SearchWorkload,
  maxLoraRank: number,
): (c: number, p: number) => number {
  const featuresAt = servesFeaturesOf(profile, workload, maxLoraRank);
  const known = new Map<string, number>();
  return (c, p) => {
    const key = `${c}x${p}`;
    let chance = known.get(key);
    if (chance === undefined)
      known.set(key, (chance = servesProbability(serves, featuresAt(c, p))));
    return chance;
  };
}

/**
 * Without a serving model (a forest trained before it): undefined where the steady-state
 * estimate says the pair serves (or no neighbour does better); else the neighbour it says
 * serves with the most adapters, then slots.
 */
export function closedFormCheck(
  profile: Profile,
  workload: SearchWorkload,
  maxLoraRank: number,
  threshold: number,
  c: number,
  p: number,
  grid: NeighbourGrid,
): Neighbour | undefined {
  const lengths = lengthsFor(profile, workload.requestLengths ?? { kind: 'sharegpt' });
  const at = (cc: number, pp: number) => {
    const e = estimatePair(profile, lengths, workload.rates, cc, pp, maxLoraRank);
    return { c: cc, p: pp, ratio: e.completionRatio, throughput: e.throughputTokensPerSecond };
  };
  const serves = (e: { ratio: number }) => e.ratio >= 1 - threshold;
  const here = at(c, p);
  if (serves(here)) return undefined;
  const neighbours = neighboursOf(c, p, grid)
    .map(([cc, pp]) => at(cc, pp))
    .filter(serves);
  if (neighbours.length === 0) return undefined;
  const best = neighbours.reduce((a, b) => (b.c > a.c || (b.c === a.c && b.p > a.p) ? b : a));
  return {
    c: best.c,
    p: best.p,
    here: here.ratio,
    there: best.ratio,
    throughput: best.throughput,
    reading: 'completion',
  };
}
