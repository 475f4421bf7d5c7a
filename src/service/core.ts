import { setMaxListeners } from 'node:events';

import { loadModel, ModelUnavailableError, type ModelFile } from '../model/model.js';
import { listProfiles, loadProfile } from '../profiles/store.js';
import { evidenceOf } from '../twin/profile.js';
import { ProfileService } from './profiles.js';
import { loadVerdictRuns } from '../profiles/verdicts.js';
import { loadLatencyModel } from '../profiles/latency.js';
import {
  NoServingConfigurationError,
  Recommender,
  recommendRequestSchema,
  type RecommendRequest,
  type RecommendResponse,
} from '../recommend/index.js';
import {
  SUBOPTIMAL_TOLERANCE,
  type CheckRequest,
  type CheckResponse,
  type SimulateResponse,
} from './check-schema.js';
import { DerivePool } from '../runtime/derive-pool.js';
import { SimulationPool } from '../runtime/pool.js';
import type { TwinRunner } from '../runtime/runner.js';
import { placeCatalog, type PlacementRequest, type PlacementResponse } from '../placement/index.js';
import {
  assertFitsModelLen,
  breaksSlo,
  CachedSimulator,
  isStable,
  pairLatency,
  SearchInputError,
  type SimulationOutcome,
} from '../search/index.js';
import {
  RunRepository,
  type RunKeyNumbers,
  type RunKind,
  type RunRecord,
} from '../storage/runs.js';
import { SqliteSimulationStore } from '../storage/simulation-cache.js';
import { InputError, fieldIssues } from '../input/errors.js';
import type { Db } from '../storage/db.js';
import { scenarioSchema, TWIN_VERSION, type Scenario } from '../twin/index.js';

/** A simulated configuration's key numbers, as run lists show them. */
const outcomeSummary = (r: {
  feasible: boolean;
  throughputTokensPerSecond: number;
  offeredTokensPerSecond: number;
  starving: boolean;
}): RunKeyNumbers => ({
  feasible: r.feasible,
  throughputTokensPerSecond: r.throughputTokensPerSecond,
  offeredTokensPerSecond: r.offeredTokensPerSecond,
  starving: r.starving,
});

export class ComputationTimeoutError extends Error {}

/**
 * One placement's limit by default. Three 10,000-adapter placements at once on 2 cores took
 * 270-272 s each (docs/placement/concurrent.md), one alone 95 s: 300 s would leave the loaded
 * case a 10% margin, and other requests sharing the pool can double it; 900 s leaves room for it.
 */
export const DEFAULT_PLACEMENT_TIMEOUT_MS = 900_000;
/** The client closed the connection before its answer was ready. */
export class ClientGoneError extends Error {}

export interface CoreOptions {
  db: Db;
  threads?: number;
  /** Twin tasks queued beyond this are refused (HTTP 503) rather than left to pile up. */
  maxQueue?: number;
  /** Limit on one request's twin work, in ms. */
  requestTimeoutMs?: number;
  /** Runs the simulations; default: an in-process pool of `threads` threads. */
  runner?: TwinRunner;
  /** Limit on one placement's twin work, in ms: a large catalog takes minutes. */
  placementTimeoutMs?: number;
  now?: () => number;
}

/**
 * The service's business logic, apart from HTTP: runs the recommender, the twin, checks and
 * placements, with a twin runner (worker pool or queue), a two-level simulation cache (LRU in memory, SQLite on disk) and a record of
 * every run. Routes only translate between HTTP and these methods.
 */
export class ServiceCore {
  /** Where simulations run: the in-process pool, or BullMQ jobs (src/runtime/runner.ts). */
  readonly runner: TwinRunner;
  readonly cache: CachedSimulator;
  readonly runs: RunRepository;
  /** Derived profiles: POST /v1/profiles stores them, every route then takes their ids. */
  readonly derivedProfiles: ProfileService;
  readonly requestTimeoutMs: number;
  readonly placementTimeoutMs: number;
  private readonly now: () => number;
  private readonly derivePool: DerivePool;
  twinRuns = 0;

  constructor(options: CoreOptions) {
    this.runner =
      options.runner ??
      new SimulationPool({
        ...(options.threads ? { threads: options.threads } : {}),
        maxQueue: options.maxQueue ?? 256,
      });
    this.requestTimeoutMs = options.requestTimeoutMs ?? 60_000;
    this.placementTimeoutMs = options.placementTimeoutMs ?? DEFAULT_PLACEMENT_TIMEOUT_MS;
    this.now = options.now ?? (() => performance.now());
    this.runs = new RunRepository(options.db);
    this.derivePool = new DerivePool();
    this.derivedProfiles = new ProfileService(options.db, (request, measured) =>
      this.derivePool.derive(request, measured),
    );
    this.cache = new CachedSimulator(
      (scenario, profile, starvationThreshold, signal) => {
        this.twinRuns++;
        // Shipped profiles are read by id where the twin runs; a derived one travels with the task.
        const task =
          evidenceOf(profile) === 'measured'
            ? { scenario, starvationThreshold }
            : { scenario, starvationThreshold, profile };
        return this.runner.run(task, signal);
      },
      { store: new SqliteSimulationStore(options.db) },
    );
  }

  /** The recommender `method: model` answers with (no signal: it simulates nothing). */
  private forestOnly: Recommender | undefined;

  /** A recommender whose twin work stops when `signal` aborts (unless another request shares it). */
  recommender(signal?: AbortSignal): Recommender {
    return new Recommender({
      loadProfile,
      loadModel,
      loadVerdictRuns,
      loadLatencyModel,
      simulate: (s, p, t) => this.cache.simulate(s, p, t, signal),
      simulateAcrossArrivals: (s, p, t) => this.cache.simulateAcrossArrivals(s, p, t, signal),
    });
  }

  /**
   * Runs `work` under the request's time limit and the client's signal: when either fires, the
   * work's signal aborts, which drops its queued simulations and stops running ones that no other
   * request waits on, so the next request does not wait behind abandoned work.
   */
  private async withinLimit<T>(
    work: (signal: AbortSignal) => Promise<T>,
    clientSignal?: AbortSignal,
    limitMs = this.requestTimeoutMs,
  ): Promise<T> {
    const controller = new AbortController();
    // Every simulation a request runs listens on this one signal: a placement runs hundreds.
    setMaxListeners(0, controller.signal);
    const timer = setTimeout(
      () =>
        controller.abort(
          new ComputationTimeoutError(
            `the computation took longer than ${limitMs} ms; the twin results finished so far are cached, so a retry will be faster`,
          ),
        ),
      limitMs,
    );
    const onClientGone = () =>
      controller.abort(new ClientGoneError('the client closed the connection'));
    if (clientSignal?.aborted) onClientGone();
    clientSignal?.addEventListener('abort', onClientGone, { once: true });
    const aborted = new Promise<never>((_, reject) => {
      if (controller.signal.aborted) reject(controller.signal.reason as Error);
      controller.signal.addEventListener('abort', () => reject(controller.signal.reason as Error), {
        once: true,
      });
    });
    try {
      return await Promise.race([work(controller.signal), aborted]);
    } finally {
      clearTimeout(timer);
      clientSignal?.removeEventListener('abort', onClientGone);
    }
  }

  private record(
    kind: RunKind,
    profile: string,
    method: string | null,
    verdict: string,
    summary: RunKeyNumbers,
    request: unknown,
    response: unknown,
    started: number,
    modelVersion: string | null,
  ): Promise<RunRecord> {
    return this.runs.insert({
      kind,
      profile,
      method,
      verdict,
      summary,
      request,
      response,
      twinVersion: TWIN_VERSION,
      modelVersion,
      durationMs: this.now() - started,
    });
  }

  private modelVersion(profile: string): string | null {
    try {
      return loadModel(profile).modelVersion;
    } catch (e) {
      if (e instanceof ModelUnavailableError) return null;
      throw e;
    }
  }

  async recommend(
    request: RecommendRequest,
    clientSignal?: AbortSignal,
  ): Promise<{ run: RunRecord; response: RecommendResponse }> {
    const started = this.now();
    loadProfile(request.profile);
    // `model` runs no twin work, so there is nothing for a time limit or a gone client to stop:
    // it skips their controller, timer and listeners, and shares one recommender.
    const response =
      request.method === 'model'
        ? await (this.forestOnly ??= this.recommender()).recommend(request)
        : await this.withinLimit(
            (signal) => this.recommender(signal).recommend(request),
            clientSignal,
          );
    const modelVersion = request.method === 'twin' ? null : this.modelVersion(request.profile);
    const run = await this.record(
      'recommend',
      request.profile,
      response.method,
      'ok',
      {
        concurrentAdapters: response.recommendation.concurrentAdapters,
        parallelAdapters: response.recommendation.parallelAdapters,
        maxLoraRank: response.recommendation.maxLoraRank,
        throughputTokensPerSecond: response.recommendation.throughputTokensPerSecond,
        offeredTokensPerSecond: response.recommendation.offeredTokensPerSecond,
        starving: response.recommendation.starving,
      },
      request,
      response,
      started,
      modelVersion,
    );
    return { run, response };
  }

  /** Places a catalog on GPUs, every GPU verified by the twin (src/placement/). */
  async place(
    request: PlacementRequest,
    clientSignal?: AbortSignal,
  ): Promise<{ run: RunRecord; response: PlacementResponse }> {
    const started = this.now();
    loadProfile(request.profile);
    const response = await this.withinLimit(
      (signal) =>
        placeCatalog(request, {
          loadProfile,
          loadLatencyModel,
          simulate: (s, p, t) => this.cache.simulate(s, p, t, signal),
        }),
      clientSignal,
      this.placementTimeoutMs,
    );
    const run = await this.record(
      'placement',
      request.profile,
      'loraplan',
      response.unplaced.length > 0 ? 'partial' : 'ok',
      {
        gpus: response.totals.gpus,
        lowerBoundGpus: response.lowerBound.gpus,
        adapters: response.totals.adapters,
        unplacedAdapters: response.unplaced.length,
        throughputTokensPerSecond: response.totals.throughputTokensPerSecond,
        offeredTokensPerSecond: response.totals.offeredTokensPerSecond,
      },
      request,
      response,
      started,
      null,
    );
    return { run, response };
  }

  async simulate(
    scenario: Scenario,
    clientSignal?: AbortSignal,
  ): Promise<{ run: RunRecord; result: SimulateResponse }> {
    const started = this.now();
    const profile = loadProfile(scenario.profile);
    assertFitsModelLen(profile, scenario.workload);
    const outcome = await this.withinLimit(
      (signal) => this.cache.simulateAcrossArrivals(scenario, profile, 0.1, signal),
      clientSignal,
    );
    // The realisations behind the TTFT are reported in latency; the rest is this seed's run.
    const twin: SimulationOutcome = { ...outcome };
    delete twin.ttftAcrossArrivals;
    const result: SimulateResponse = {
      ...twin,
      wallTimeMs: outcome.wallTimeMs ?? 0,
      latency: pairLatency(outcome, scenario, loadLatencyModel(profile.id)),
    };
    const run = await this.record(
      'simulate',
      scenario.profile,
      null,
      'ok',
      outcomeSummary(result),
      scenario,
      result,
      started,
      null,
    );
    return { run, result };
  }

  async check(
    request: CheckRequest,
    clientSignal?: AbortSignal,
  ): Promise<{ run: RunRecord; response: CheckResponse }> {
    const started = this.now();
    const profile = loadProfile(request.profile);
    const parsedScenario = scenarioSchema.safeParse({
      profile: request.profile,
      config: request.config,
      workload: request.workload,
    });
    if (!parsedScenario.success) throw new InputError(fieldIssues(parsedScenario.error, ['body']));
    const scenario = parsedScenario.data;
    assertFitsModelLen(profile, scenario.workload);
    const r = await this.withinLimit(
      (signal) =>
        this.cache.simulateAcrossArrivals(scenario, profile, request.starvationThreshold, signal),
      clientSignal,
    );
    const latency = pairLatency(r, scenario, loadLatencyModel(profile.id));
    const result = {
      feasible: r.feasible,
      throughputTokensPerSecond: r.throughputTokensPerSecond,
      offeredTokensPerSecond: r.offeredTokensPerSecond,
      starving: r.starving,
      ttftP99Ms: latency.ttftMs.p99.ms,
      itlP99Ms: latency.itlMs.p99.ms,
      stable: isStable(r),
      latency,
    };
    const slo = request.slo;
    let response: CheckResponse;
    if (!r.feasible)
      response = {
        verdict: 'infeasible',
        reason: r.infeasibleReason ?? 'vLLM would not start',
        result,
      };
    else if (r.starving) {
      response = {
        verdict: 'starving',
        reason: `completes ${Math.round(r.throughputTokensPerSecond)} of ${Math.round(r.offeredTokensPerSecond)} tok/s offered, below ${Math.round(100 * (1 - request.starvationThreshold))}%`,
        result,
      };
    } else if (breaksSlo(latency, slo)) {
      const range = (e: { ms: number; sloMs: number }) =>
        `${Math.round(e.ms)} ms (90% bound ${Math.round(e.sloMs)} ms)`;
      response = {
        verdict: 'slo-violated',
        reason: `predicted TTFT p99 ${range(latency.ttftMs.p99)}, ITL p99 ${range(latency.itlMs.p99)}: the bound breaks the SLO`,
        result,
      };
    } else {
      response = await this.compareWithRecommendation(request, result, clientSignal);
    }
    // A latency verdict outside what the intervals were measured on is a judgement, not a promise.
    if (slo && latency.outsideEnvelope?.length && r.feasible && !r.starving)
      response = {
        ...response,
        reason: `${response.reason}. The SLO was judged on latency bounds whose coverage was not measured for this case (${latency.outsideEnvelope.map((o) => o.feature).join(', ')} outside the real runs': see result.latency.outsideEnvelope)`,
      };
    const run = await this.record(
      'check',
      request.profile,
      null,
      response.verdict,
      outcomeSummary(result),
      request,
      response,
      started,
      null,
    );
    return { run, response };
  }

  /** The configuration serves: is there throughput left on the table versus the recommendation? */
  private async compareWithRecommendation(
    request: CheckRequest,
    result: CheckResponse['result'],
    clientSignal?: AbortSignal,
  ): Promise<CheckResponse> {
    const rates = request.workload.rates ?? request.workload.adapters?.map((a) => a.rate) ?? [];
    const ranks = request.workload.ranks ?? request.workload.adapters?.map((a) => a.rank) ?? [];
    const recRequest = recommendRequestSchema.safeParse({
      profile: request.profile,
      workload: { rates, ranks, requestLengths: request.workload.requestLengths },
      method: 'auto',
      starvationThreshold: request.starvationThreshold,
      ...(request.slo ? { slo: request.slo } : {}),
    });
    if (!recRequest.success) {
      return {
        verdict: 'ok',
        reason: 'serves the workload (too heavy to compare with a recommendation)',
        result,
      };
    }
    let rec: RecommendResponse;
    try {
      rec = await this.withinLimit(
        (signal) => this.recommender(signal).recommend(recRequest.data),
        clientSignal,
      );
    } catch (e) {
      // The configuration was simulated and serves: that verdict stands without a comparison.
      const why =
        e instanceof ModelUnavailableError
          ? 'no trained forest to compare with'
          : e instanceof NoServingConfigurationError
            ? 'no pair on the recommendation grid serves it, so there is nothing to compare with'
            : e instanceof SearchInputError
              ? `no recommendation to compare with: ${e.message}`
              : undefined;
      if (why === undefined) throw e;
      return { verdict: 'ok', reason: `serves the workload (${why})`, result };
    }
    const best = rec.recommendation.throughputTokensPerSecond;
    const left = Math.max(0, best - result.throughputTokensPerSecond);
    const recommendation = {
      concurrentAdapters: rec.recommendation.concurrentAdapters,
      parallelAdapters: rec.recommendation.parallelAdapters,
      throughputTokensPerSecond: best,
      throughputLeftOnTableTokensPerSecond: left,
      vllmArgs: rec.vllmArgs,
    };
    if (left > SUBOPTIMAL_TOLERANCE * best) {
      return {
        verdict: 'suboptimal',
        reason: `serves the workload, but ${recommendation.concurrentAdapters} adapters with ${recommendation.parallelAdapters} slots would serve ${Math.round(left)} tok/s more`,
        result,
        recommendation,
      };
    }
    return {
      verdict: 'ok',
      reason: 'serves the workload within 5% of the recommended throughput',
      result,
      recommendation,
    };
  }

  profiles() {
    return this.derivedProfiles.summaries();
  }

  models() {
    return listProfiles().flatMap((id) => {
      let m: ModelFile;
      try {
        m = loadModel(id);
      } catch (e) {
        if (e instanceof ModelUnavailableError) return [];
        throw e;
      }
      return [
        {
          profile: id,
          modelVersion: m.modelVersion,
          twinVersion: m.twinVersion,
          features: m.features,
          hyperparameters: m.hyperparameters,
          trainingSet: m.trainingSet,
          cvErrors: {
            concurrent: m.targets.concurrent.cv,
            parallel: m.targets.parallel.cv,
            throughput: m.targets.throughput.cv,
          },
          featureImportance: m.targets.concurrent.permutationImportance,
        },
      ];
    });
  }

  async close(): Promise<void> {
    await this.runs.close();
    await this.derivePool.close();
    await this.runner.close();
  }
}
