import { createHash } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import { TWIN_VERSION, type Profile, type Scenario, type SimulationResult } from '../twin/index.js';

/** Deterministic JSON: object keys sorted, so equal scenarios hash equally whatever their key order. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

const fingerprints = new WeakMap<Profile, string>();

/** A short hash of a profile's content: a recalibrated profile must not hit old cache entries. */
export function profileFingerprint(profile: Profile): string {
  let f = fingerprints.get(profile);
  if (!f) {
    f = createHash('sha256').update(canonicalJson(profile)).digest('hex').slice(0, 16);
    fingerprints.set(profile, f);
  }
  return f;
}

/** Cache key of one simulation: the scenario, the exact profile and the twin version. */
export function simulationKey(
  profile: Profile,
  scenario: Scenario,
  starvationThreshold: number,
): string {
  return createHash('sha256')
    .update(
      canonicalJson({
        twin: TWIN_VERSION,
        profile: profileFingerprint(profile),
        scenario,
        starvationThreshold,
      }),
    )
    .digest('hex');
}

export type SimulationOutcome = Omit<SimulationResult, 'wallTimeMs'> & { wallTimeMs?: number };
export type RunSimulation = (
  scenario: Scenario,
  profile: Profile,
  starvationThreshold: number,
) => Promise<SimulationOutcome>;

/** A second-level store behind the in-memory LRU (the service puts SQLite here). */
export interface SimulationStore {
  get(key: string): SimulationOutcome | undefined;
  set(key: string, value: SimulationOutcome): void;
}

export interface CacheStats {
  hits: number;
  misses: number;
}

/**
 * Simulations by canonical scenario hash. The LRU holds promises, so simultaneous requests for the
 * same scenario share one computation; failed computations are not cached.
 */
export class CachedSimulator {
  private readonly lru: LRUCache<string, Promise<SimulationOutcome>>;
  readonly stats: CacheStats = { hits: 0, misses: 0 };

  constructor(
    private readonly run: RunSimulation,
    options: { maxEntries?: number; store?: SimulationStore } = {},
  ) {
    this.lru = new LRUCache({ max: options.maxEntries ?? 20_000 });
    this.store = options.store;
  }
  private readonly store: SimulationStore | undefined;

  simulate(
    scenario: Scenario,
    profile: Profile,
    starvationThreshold: number,
  ): Promise<SimulationOutcome> {
    const key = simulationKey(profile, scenario, starvationThreshold);
    const hit = this.lru.get(key);
    if (hit) {
      this.stats.hits++;
      return hit;
    }
    const stored = this.store?.get(key);
    if (stored) {
      this.stats.hits++;
      const p = Promise.resolve(stored);
      this.lru.set(key, p);
      return p;
    }
    this.stats.misses++;
    const pending = this.run(scenario, profile, starvationThreshold).then(
      (result) => {
        this.store?.set(key, result);
        return result;
      },
      (error: unknown) => {
        this.lru.delete(key);
        throw error;
      },
    );
    this.lru.set(key, pending);
    return pending;
  }
}
