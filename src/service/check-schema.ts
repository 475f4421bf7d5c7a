// The request and response shapes of /v1/check and /v1/simulate beyond those of the twin and the
// recommender: the single source of their types, their validation and the OpenAPI document.
import { z } from 'zod';
import { latencyPredictionSchema } from '../latency/index.js';
import { sloSchema } from '../recommend/index.js';
import { configSchema, simulationResultSchema, workloadSchema } from '../twin/index.js';

export const checkRequestSchema = z
  .strictObject({
    profile: z.string().min(1).max(200),
    workload: workloadSchema,
    config: configSchema,
    starvationThreshold: z.number().gt(0).lt(1).default(0.1),
    slo: sloSchema.optional(),
  })
  .meta({
    id: 'CheckRequest',
    examples: [
      {
        profile: 'h100-64gb/llama-3.1-8b-instruct',
        workload: { rates: [0.1, 0.05, 0.025], ranks: [8, 16] },
        config: { maxLoras: 32, maxCpuLoras: 192, maxLoraRank: 16 },
        slo: { ttftP99Ms: 5000 },
      },
    ],
  });
export type CheckRequest = z.output<typeof checkRequestSchema>;

export const checkVerdicts = [
  'ok',
  'starving',
  'infeasible',
  'slo-violated',
  'suboptimal',
] as const;
export const checkResponseSchema = z
  .object({
    verdict: z.enum(checkVerdicts),
    reason: z.string(),
    result: z.object({
      feasible: z.boolean(),
      throughputTokensPerSecond: z.number(),
      offeredTokensPerSecond: z.number(),
      starving: z.boolean(),
      ttftP99Ms: z.number().meta({ description: 'Predicted p99 TTFT (latency.ttftMs.p99.ms)' }),
      itlP99Ms: z.number().meta({ description: 'Predicted p99 ITL (latency.itlMs.p99.ms)' }),
      stable: z.boolean().meta({
        description: 'Completes at least 99% of its offered load with a queue that does not grow',
      }),
      latency: latencyPredictionSchema,
    }),
    recommendation: z
      .object({
        concurrentAdapters: z.number(),
        parallelAdapters: z.number(),
        throughputTokensPerSecond: z.number(),
        throughputLeftOnTableTokensPerSecond: z.number(),
        vllmArgs: z.array(z.string()),
      })
      .optional(),
  })
  .meta({ id: 'CheckResponse' });
export type CheckResponse = z.infer<typeof checkResponseSchema>;

/** The twin's result with the latency a client would see: corrected figures and intervals. */
export const simulateResponseSchema = simulationResultSchema
  .extend({ latency: latencyPredictionSchema })
  .meta({ id: 'SimulateResponse' });
export type SimulateResponse = z.infer<typeof simulateResponseSchema>;

/** A configuration within this share of the recommendation's throughput is not called suboptimal. */
export const SUBOPTIMAL_TOLERANCE = 0.05;
