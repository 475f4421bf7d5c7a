import { runEngine, type StepObserver, type StepStats, type StepTiming } from './engine.js';
import { createLengthSampler } from './lengths.js';
import { kvCacheTokens, type Profile } from './profile.js';
import { seededStream, shuffleInPlace } from './random.js';
import {
  DEFAULT_STARVATION_THRESHOLD,
  type Scenario,
  type SimulationResult,
  type Workload,
} from './scenario.js';

/** Bumped whenever a change to the twin can change a result: part of every cache key. */
export const TWIN_VERSION = '1.2.0';

const STREAM_ARRIVALS = 1;
const STREAM_LENGTHS = 2;
const STREAM_RATE_SHUFFLE = 3;
const STREAM_RANK_SHUFFLE = 4;

export interface SimulateOptions {
  starvationThreshold?: number;
  observer?: StepObserver;
  stepTimeObserver?: (step: StepTiming) => void;
  /** Also return decode-weighted step statistics (used by calibration). */
  includeStepStats?: boolean;
}

export type TwinResult = Omit<SimulationResult, 'wallTimeMs'> & { stepStats?: StepStats };

export interface ResolvedAdapters {
  rates: Float64Array;
  ranks: Int32Array;
}

/**
 * The measurements' generator: adapter i gets rates[i mod len] and ranks[i mod len], then rates
 * and ranks are shuffled independently with the seed. An explicit catalog is taken as given.
 */
export function resolveAdapters(
  workload: Workload,
  adapterCount: number,
  seed: number,
): ResolvedAdapters {
  if (workload.adapters) {
    return {
      rates: Float64Array.from(workload.adapters.map((a) => a.rate)),
      ranks: Int32Array.from(workload.adapters.map((a) => a.rank)),
    };
  }
  const groupRates = workload.rates!;
  const groupRanks = workload.ranks!;
  const rates = Array.from({ length: adapterCount }, (_, i) => groupRates[i % groupRates.length]!);
  const ranks = Array.from({ length: adapterCount }, (_, i) => groupRanks[i % groupRanks.length]!);
  shuffleInPlace(rates, seededStream(seed, STREAM_RATE_SHUFFLE));
  shuffleInPlace(ranks, seededStream(seed, STREAM_RANK_SHUFFLE));
  return { rates: Float64Array.from(rates), ranks: Int32Array.from(ranks) };
}

/** Why vLLM would refuse this configuration at start-up, or null when it starts. */
export function infeasibility(
  profile: Profile,
  scenario: Scenario,
  kvTokens: number,
): string | null {
  const { maxLoraRank } = scenario.config;
  if (!profile.allowedLoraRanks.includes(maxLoraRank)) {
    return `max_lora_rank ${maxLoraRank} is not one vLLM accepts (${profile.allowedLoraRanks.join(', ')})`;
  }
  if (kvTokens < profile.maxModelLen) {
    return `the KV cache (${kvTokens} tokens after ${scenario.config.maxLoras} slots of rank ${maxLoraRank}) cannot hold one ${profile.maxModelLen}-token sequence, so vLLM refuses to start`;
  }
  return null;
}

/**
 * Simulates one scenario. Pure: the same scenario, profile and seed give the same result bit
 * for bit, except `wallTimeMs`, which the caller measures (time is not read here).
 */
export function simulate(
  scenario: Scenario,
  profile: Profile,
  options: SimulateOptions = {},
): TwinResult {
  const threshold = options.starvationThreshold ?? DEFAULT_STARVATION_THRESHOLD;
  const { config, workload, durationSeconds, seed } = scenario;
  const adapterCount = workload.adapters?.length ?? workload.adapterCount ?? config.maxCpuLoras;
  const adapters = resolveAdapters(workload, adapterCount, seed);
  const kvTokens = kvCacheTokens(profile, config.maxLoras, config.maxLoraRank);
  const reason = infeasibility(profile, scenario, kvTokens);
  const maxInFlight =
    workload.maxInFlightRequests === 'measurement'
      ? profile.measurementClientMaxInFlight
      : (workload.maxInFlightRequests ?? Infinity);

  const out = runEngine({
    profile,
    config,
    // An infeasible server serves nothing: simulate arrivals only, so offered load is still known.
    kvCacheTokens: reason === null ? kvTokens : 0,
    adapterRates: adapters.rates,
    adapterRanks: adapters.ranks,
    lengths: createLengthSampler(
      workload.requestLengths,
      profile.requestLengths,
      seededStream(seed, STREAM_LENGTHS),
    ),
    arrivals: seededStream(seed, STREAM_ARRIVALS),
    durationSeconds,
    maxInFlight: reason === null ? maxInFlight : 0,
    observer: options.observer,
    stepTimeObserver: options.stepTimeObserver,
  });

  const throughput = (out.completedInputTokens + out.completedOutputTokens) / durationSeconds;
  const offered = out.offeredTokens / durationSeconds;
  return {
    feasible: reason === null,
    ...(reason === null ? {} : { infeasibleReason: reason }),
    kvCacheTokens: kvTokens,
    throughputTokensPerSecond: throughput,
    inputTokensPerSecond: out.completedInputTokens / durationSeconds,
    outputTokensPerSecond: out.completedOutputTokens / durationSeconds,
    offeredTokensPerSecond: offered,
    arrivedRequests: out.arrivedRequests,
    droppedRequests: out.droppedRequests,
    completedRequests: out.completedRequests,
    completionRatio: out.arrivedRequests > 0 ? out.completedRequests / out.arrivedRequests : 1,
    starving: isStarving(throughput, offered, threshold),
    ttftMs: { mean: out.ttft.mean(), p50: out.ttft.quantile(0.5), p99: out.ttft.quantile(0.99) },
    itlMs: {
      mean: out.itlMeanCompletedMs,
      p50: out.itl.quantile(0.5),
      p99: out.itl.quantile(0.99),
    },
    preemptions: out.preemptions,
    adapterLoads: out.adapterLoads,
    maxWaitingRequests: out.maxWaitingRequests,
    meanRunningRequests: out.meanRunningRequests,
    queueGrowthShare:
      (out.backlogAtEnd - out.backlogAtHalfWindow) / Math.max(1, out.acceptedSecondHalf),
    engineSteps: out.engineSteps,
    ...(options.includeStepStats ? { stepStats: out.stepStats } : {}),
  };
}

/** The starvation rule: completed tokens fall more than `threshold` short of arrived tokens. */
export function isStarving(throughput: number, offered: number, threshold: number): boolean {
  return throughput < (1 - threshold) * offered;
}
