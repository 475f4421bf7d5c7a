import type { MeasuredCase, TwinLatency } from '../src/latency/index.js';
import type { SimulationOutcome } from '../src/search/index.js';
import { profileSchema, type Profile } from '../src/twin/profile.js';
import { scenarioSchema, type Scenario, type ScenarioInput } from '../src/twin/scenario.js';

/**
 * A synthetic profile with round numbers, so expected results can be computed by hand: every
 * step takes `stepMs` unless a test sets other terms.
 */
/** A step-time model's LoRA terms all zero: the cases that isolate another mechanism. */
export const NO_LORA_COST: Profile['stepTime']['lora'] = {
  intercept: 0,
  perSlot: 0,
  perAdapterInBatch: 0,
  perBatchedToken: 0,
  perBatchedTokenSlot: 0,
};

export function testProfile(overrides: Partial<Profile> = {}, stepMs = 10): Profile {
  return profileSchema.parse({
    schemaVersion: 1,
    id: 'test/gpu',
    gpu: 'test',
    model: 'gpu',
    vllmVersion: '0.8.5',
    maxModelLen: 4096,
    blockSize: 16,
    preallocateBlocks: 0,
    allowedLoraRanks: [8, 16, 32, 64],
    kvCache: { intercept: 100_000, perSlotRank: 10, measured: [] },
    stepTime: {
      base: { intercept: stepMs, perDecodeSeq: 0, perPrefillToken: 0, perKvKiloToken: 0 },
      lora: NO_LORA_COST,
    },
    scheduler: { intercept: 0, perRunningRequest: 0, perVisitedWaitingRequest: 0 },
    adapterLoad: {
      cpuToGpuMs: [],
      cpuToGpuFallback: { intercept: 0, perMaxLoraRank: 0, paddedPenalty: 0 },
      diskToCpuMs: 0,
    },
    requestLengths: {
      prompt: [
        [0, 4],
        [1, 400],
      ],
      output: [
        [0, 4],
        [1, 400],
      ],
      maxTotalTokens: 2048,
      targets: {
        promptMean: 0,
        outputMean: 0,
        promptStd: 0,
        outputStd: 0,
        promptQuartiles: [0, 0],
        outputQuartiles: [0, 0],
      },
    },
    measurementClientMaxInFlight: 1000,
    fit: {},
    ...overrides,
  });
}

export function scenario(input: Omit<ScenarioInput, 'profile'> & { profile?: string }): Scenario {
  return scenarioSchema.parse({ profile: 'test/gpu', ...input });
}

/** What a stand-in twin returns for one pair: only the verdict and the throughputs matter. */
export function stubOutcome(o: {
  throughputTokensPerSecond: number;
  offeredTokensPerSecond: number;
  starving: boolean;
}): SimulationOutcome {
  return {
    feasible: true,
    kvCacheTokens: 1,
    ...o,
    inputTokensPerSecond: 0,
    outputTokensPerSecond: 0,
    arrivedRequests: 0,
    droppedRequests: 0,
    completedRequests: 0,
    completionRatio: o.throughputTokensPerSecond / o.offeredTokensPerSecond,
    ttftMs: { mean: 0, p50: 0, p99: 0 },
    itlMs: { mean: 0, p50: 0, p99: 0 },
    preemptions: 0,
    adapterLoads: 0,
    maxWaitingRequests: 0,
    queueGrowthShare: 0,
    meanRunningRequests: 0,
    engineSteps: 0,
  };
}

/** A measured run's workload and flags as the latency envelope reads it: the light workload. */
export const measuredCase = (over: Partial<MeasuredCase> = {}): MeasuredCase => ({
  rates: [0.1, 0.05, 0.025],
  ranks: [8, 16],
  lengths: 'sharegpt',
  maxLoras: 16,
  maxCpuLoras: 64,
  maxLoraRank: 16,
  maxNumBatchedTokens: 2048,
  maxNumSeqs: 2048,
  durationSeconds: 3600,
  ...over,
});

/** The twin's latency of one pair, round numbers: 64 adapters on 16 slots that keep up. */
export const twinLatency = (over: Partial<TwinLatency> = {}): TwinLatency => ({
  maxLoras: 16,
  maxCpuLoras: 64,
  maxLoraRank: 16,
  meanRunningRequests: 20,
  completionRatio: 1,
  ttftMs: { p50: 100, p99: 400 },
  itlMs: { mean: 20, p50: 18, p99: 60 },
  ...over,
});
