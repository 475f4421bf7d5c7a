import { z } from 'zod';

/** Limits that keep one simulation bounded in memory and time. */
export const LIMITS = {
  maxAdapters: 4096,
  maxRatePerAdapter: 1000,
  maxDurationSeconds: 24 * 3600,
  maxGroups: 1024,
  maxEmpiricalSamples: 100_000,
  maxTokensPerRequest: 1_000_000,
  /**
   * Expected arrivals from the adapters one simulation actually runs: bounds its time and memory
   * (docs/performance.md states the measured bound).
   */
  maxExpectedRequests: 10_000_000,
} as const;

const positiveInt = z.number().int().positive();

export const requestLengthsSchema = z
  .discriminatedUnion('kind', [
    z.strictObject({
      kind: z.literal('sharegpt'),
      /** Multiplies every drawn length (then clipped to the dataset's filter): varies the mean. */
      scale: z.number().min(0.1).max(10).optional(),
    }),
    z.strictObject({
      kind: z.literal('fixed'),
      input: positiveInt.max(LIMITS.maxTokensPerRequest),
      output: positiveInt.max(LIMITS.maxTokensPerRequest),
    }),
    z.strictObject({
      kind: z.literal('empirical'),
      samples: z
        .array(
          z.tuple([
            positiveInt.max(LIMITS.maxTokensPerRequest),
            positiveInt.max(LIMITS.maxTokensPerRequest),
          ]),
        )
        .min(1)
        .max(LIMITS.maxEmpiricalSamples),
    }),
  ])
  .meta({ description: 'Request lengths: the profile ShareGPT-like default, fixed, or sampled.' });

const rateSchema = z.number().min(0).max(LIMITS.maxRatePerAdapter);
const rankSchema = positiveInt.max(1024);

export const configSchema = z.strictObject({
  maxLoras: positiveInt.max(LIMITS.maxAdapters).meta({ description: '--max-loras: GPU slots' }),
  maxCpuLoras: positiveInt
    .max(LIMITS.maxAdapters)
    .meta({ description: '--max-cpu-loras: adapters held in host memory' }),
  maxLoraRank: rankSchema.meta({ description: '--max-lora-rank' }),
  maxNumBatchedTokens: positiveInt.max(1 << 20).default(2048),
  maxNumSeqs: positiveInt.max(1 << 16).default(2048),
});

export const workloadSchema = z
  .strictObject({
    rates: z.array(rateSchema).min(1).max(LIMITS.maxGroups).optional(),
    ranks: z.array(rankSchema).min(1).max(LIMITS.maxGroups).optional(),
    adapterCount: positiveInt.max(LIMITS.maxAdapters).optional(),
    adapters: z
      .array(z.strictObject({ rate: rateSchema, rank: rankSchema }))
      .min(1)
      .max(LIMITS.maxAdapters)
      .optional(),
    requestLengths: requestLengthsSchema.default({ kind: 'sharegpt' }),
    /**
     * Client-side cap on requests in flight; arrivals beyond it fail. The measurements' client
     * ran out of ephemeral ports: pass "measurement" to reproduce that client.
     */
    maxInFlightRequests: z.union([positiveInt, z.literal('measurement')]).optional(),
  })
  .superRefine((w, ctx) => {
    const groups = w.rates !== undefined || w.ranks !== undefined;
    if (w.adapters && groups) {
      ctx.addIssue({
        code: 'custom',
        path: ['adapters'],
        message: 'give either adapters or rates and ranks, not both',
      });
    } else if (!w.adapters && (w.rates === undefined || w.ranks === undefined)) {
      ctx.addIssue({
        code: 'custom',
        path: [w.rates === undefined ? 'rates' : 'ranks'],
        message: 'required unless adapters is given',
      });
    }
  });

/**
 * Requests expected to arrive from the adapters actually simulated: adapter i sends
 * rates[i mod groups] (the shuffle that follows only reorders them), so padding the rate list with
 * zeros beyond the adapters in use neither hides nor adds load.
 */
export function expectedArrivals(
  workload: { rates?: number[]; adapters?: Array<{ rate: number }>; adapterCount?: number },
  maxCpuLoras: number,
  durationSeconds: number,
): number {
  if (workload.adapters) return workload.adapters.reduce((s, a) => s + a.rate, 0) * durationSeconds;
  return (
    requestsPerSecond(workload.rates ?? [], workload.adapterCount ?? maxCpuLoras) * durationSeconds
  );
}

/** Requests per second of `adapters` adapters cycling through the rate groups. */
export function requestsPerSecond(rates: readonly number[], adapters: number): number {
  if (rates.length === 0) return 0;
  const fullCycles = Math.floor(adapters / rates.length);
  const cycleRate = rates.reduce((a, b) => a + b, 0);
  let rate = fullCycles * cycleRate;
  for (let i = 0; i < adapters % rates.length; i++) rate += rates[i]!;
  return rate;
}

export const scenarioSchema = z
  .strictObject({
    profile: z.string().min(1).max(200),
    config: configSchema,
    workload: workloadSchema,
    durationSeconds: z.number().positive().max(LIMITS.maxDurationSeconds).default(3600),
    seed: z.number().int().min(0).max(0xffffffff).default(1),
  })
  .superRefine((s, ctx) => {
    if (s.config.maxCpuLoras < s.config.maxLoras) {
      ctx.addIssue({
        code: 'custom',
        path: ['config', 'maxCpuLoras'],
        message: 'vLLM requires max_cpu_loras >= max_loras',
      });
    }
    const arrivals = expectedArrivals(s.workload, s.config.maxCpuLoras, s.durationSeconds);
    if (arrivals > LIMITS.maxExpectedRequests) {
      ctx.addIssue({
        code: 'custom',
        path: ['workload', s.workload.adapters ? 'adapters' : 'rates'],
        message: `the adapters simulated would send about ${Math.round(arrivals)} requests in the window; the limit is ${LIMITS.maxExpectedRequests}`,
      });
    }
    const ranks = s.workload.adapters?.map((a) => a.rank) ?? s.workload.ranks ?? [];
    const tooLarge = ranks.find((r) => r > s.config.maxLoraRank);
    if (tooLarge !== undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['config', 'maxLoraRank'],
        message: `an adapter has rank ${tooLarge} > maxLoraRank ${s.config.maxLoraRank}`,
      });
    }
  })
  .meta({
    id: 'Scenario',
    examples: [
      {
        profile: 'h100-64gb/llama-3.1-8b-instruct',
        config: {
          maxLoras: 64,
          maxCpuLoras: 256,
          maxLoraRank: 16,
          maxNumBatchedTokens: 2048,
          maxNumSeqs: 2048,
        },
        workload: {
          rates: [0.1, 0.00625, 0.003125],
          ranks: [16, 16, 16],
          adapterCount: 256,
          requestLengths: { kind: 'sharegpt' },
        },
        durationSeconds: 3600,
        seed: 1,
      },
    ],
  });

export type ScenarioInput = z.input<typeof scenarioSchema>;
export type Scenario = z.output<typeof scenarioSchema>;
export type TwinConfig = z.output<typeof configSchema>;
export type Workload = z.output<typeof workloadSchema>;

const latencySchema = z.object({ mean: z.number(), p50: z.number(), p99: z.number() });

export const simulationResultSchema = z
  .object({
    feasible: z.boolean(),
    infeasibleReason: z.string().optional(),
    kvCacheTokens: z.number(),
    throughputTokensPerSecond: z.number(),
    inputTokensPerSecond: z.number(),
    outputTokensPerSecond: z.number(),
    offeredTokensPerSecond: z.number(),
    arrivedRequests: z.number(),
    droppedRequests: z.number(),
    completedRequests: z.number(),
    completionRatio: z.number(),
    starving: z.boolean(),
    ttftMs: latencySchema,
    itlMs: latencySchema,
    preemptions: z.number(),
    adapterLoads: z.number(),
    maxWaitingRequests: z.number(),
    meanRunningRequests: z.number(),
    queueGrowthShare: z.number().meta({
      description:
        'Requests waiting or running at the end of the window minus at half-window, as a share of the requests that arrived in the second half: near 0 when the queue is bounded, the share of arrivals left behind when it grows',
    }),
    engineSteps: z.number(),
    wallTimeMs: z.number(),
  })
  .meta({ id: 'SimulationResult' });
export type SimulationResult = z.infer<typeof simulationResultSchema>;
export type Latency = z.infer<typeof latencySchema>;

export const DEFAULT_STARVATION_THRESHOLD = 0.1;

/**
 * A run "keeps up" when its throughput is at least 95% of what is offered (issue 9's definition,
 * for real runs and simulated ones alike). Above it latency is set by the batch; below it by a
 * queue that grows all window, and a client-side ITL no longer reads the engine's step.
 */
export const KEEPS_UP_RATIO = 0.95;
