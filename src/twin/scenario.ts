import { z } from 'zod';

/** Limits that keep one simulation bounded in memory and time. */
export const LIMITS = {
  maxAdapters: 4096,
  maxRatePerAdapter: 1000,
  maxDurationSeconds: 24 * 3600,
  maxGroups: 1024,
  maxEmpiricalSamples: 100_000,
  maxTokensPerRequest: 1_000_000,
  /** Expected arrivals of one simulation: bounds its memory (~24 bytes a request) and time. */
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
    const rates = s.workload.adapters?.map((a) => a.rate) ?? s.workload.rates ?? [];
    const count = s.workload.adapters?.length ?? s.workload.adapterCount ?? s.config.maxCpuLoras;
    const meanRate = rates.length ? rates.reduce((a, b) => a + b, 0) / rates.length : 0;
    if (meanRate * count * s.durationSeconds > LIMITS.maxExpectedRequests) {
      ctx.addIssue({
        code: 'custom',
        path: ['workload', 'rates'],
        message: `about ${Math.round(meanRate * count * s.durationSeconds)} requests would arrive in the window; the limit is ${LIMITS.maxExpectedRequests}`,
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
    engineSteps: z.number(),
    wallTimeMs: z.number(),
  })
  .meta({ id: 'SimulationResult' });
export type SimulationResult = z.infer<typeof simulationResultSchema>;
export type Latency = z.infer<typeof latencySchema>;

export const DEFAULT_STARVATION_THRESHOLD = 0.1;
