import { createHash } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import { TWIN_VERSION, type Profile, type Scenario } from '../twin/index.js';
import { withTtftAcrossArrivals } from './arrivals.js';
import type { RunSimulation, SimulationOutcome } from './outcome.js';

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

/** A second-level store behind the in-memory LRU (the service puts SQLite here). */
export interface SimulationStore {
  get(key: string): SimulationOutcome | undefined;
  set(key: string, value: SimulationOutcome): void;
}

export interface CacheStats {
  hits: number;
  misses: number;
  /** Computations stopped because every request waiting on them gave up. */
  cancelled: number;
}

interface InFlight {
  promise: Promise<SimulationOutcome>;
  controller: AbortController;
  waiters: number;
}

/**
 * Simulations by canonical scenario hash. Simultaneous requests for the same scenario share one
 * computation; each may pass an AbortSignal, and the computation itself is aborted only when every
 * request waiting on it has given up. Failed and aborted computations are not cached.
 */
export class CachedSimulator {
  private readonly lru: LRUCache<string, SimulationOutcome>;
  /** Outcomes with TTFT across arrival realisations, by their first scenario's key. */
  private readonly acrossArrivals: LRUCache<string, SimulationOutcome>;
  private readonly runAcrossArrivals = withTtftAcrossArrivals((s, p, t, signal) =>
    this.simulate(s, p, t, signal),
  );
  private readonly inFlight = new Map<string, InFlight>();
  private readonly store: SimulationStore | undefined;
  readonly stats: CacheStats = { hits: 0, misses: 0, cancelled: 0 };

  constructor(
    private readonly run: RunSimulation,
    options: { maxEntries?: number; store?: SimulationStore } = {},
  ) {
    this.lru = new LRUCache({ max: options.maxEntries ?? 20_000 });
    this.acrossArrivals = new LRUCache({ max: options.maxEntries ?? 20_000 });
    this.store = options.store;
  }

  simulate(
    scenario: Scenario,
    profile: Profile,
    starvationThreshold: number,
    signal?: AbortSignal,
  ): Promise<SimulationOutcome> {
    if (signal?.aborted) return Promise.reject(signal.reason as Error);
    const key = simulationKey(profile, scenario, starvationThreshold);
    const done = this.lru.get(key) ?? this.fromStore(key);
    if (done) {
      this.stats.hits++;
      return Promise.resolve(done);
    }
    let entry = this.inFlight.get(key);
    if (entry) this.stats.hits++;
    else {
      this.stats.misses++;
      entry = this.start(key, scenario, profile, starvationThreshold);
    }
    const shared = entry;
    shared.waiters++;
    if (!signal) return shared.promise;
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        shared.waiters--;
        if (shared.waiters === 0 && this.inFlight.get(key) === shared) {
          this.inFlight.delete(key);
          this.stats.cancelled++;
          shared.controller.abort(signal.reason);
        }
        reject(signal.reason as Error);
      };
      signal.addEventListener('abort', onAbort, { once: true });
      shared.promise.then(
        (result) => {
          signal.removeEventListener('abort', onAbort);
          resolve(result);
        },
        (error: unknown) => {
          signal.removeEventListener('abort', onAbort);
          reject(error as Error);
        },
      );
    });
  }

  /**
   * As `simulate`, with TTFT read across arrival realisations where one is a lottery
   * (src/search/arrivals.ts). Each realisation is cached as any simulation; the combination is
   * remembered too, so a repeated question costs one lookup, not five.
   */
  async simulateAcrossArrivals(
    scenario: Scenario,
    profile: Profile,
    starvationThreshold: number,
    signal?: AbortSignal,
  ): Promise<SimulationOutcome> {
    const key = simulationKey(profile, scenario, starvationThreshold);
    const known = this.acrossArrivals.get(key);
    if (known) {
      this.stats.hits++;
      return known;
    }
    const outcome = await this.runAcrossArrivals(scenario, profile, starvationThreshold, signal);
    this.acrossArrivals.set(key, outcome);
    return outcome;
  }

  /** Computations under way (for metrics and tests). */
  get inFlightCount(): number {
    return this.inFlight.size;
  }

  private fromStore(key: string): SimulationOutcome | undefined {
    const stored = this.store?.get(key);
    if (stored) this.lru.set(key, stored);
    return stored;
  }

  private start(
    key: string,
    scenario: Scenario,
    profile: Profile,
    starvationThreshold: number,
  ): InFlight {
    const controller = new AbortController();
    const entry: InFlight = { controller, waiters: 0, promise: Promise.resolve() as never };
    entry.promise = this.run(scenario, profile, starvationThreshold, controller.signal).then(
      (result) => {
        this.store?.set(key, result);
        this.lru.set(key, result);
        if (this.inFlight.get(key) === entry) this.inFlight.delete(key);
        return result;
      },
      (error: unknown) => {
        if (this.inFlight.get(key) === entry) this.inFlight.delete(key);
        throw error;
      },
    );
    // Nobody may be left listening once every waiter has aborted.
    entry.promise.catch(() => undefined);
    this.inFlight.set(key, entry);
    return entry;
  }
}
