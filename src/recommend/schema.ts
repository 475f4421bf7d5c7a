import { z } from 'zod';
import { latencyPredictionSchema } from '../latency/index.js';
import { outsideFeatureSchema } from '../envelope/index.js';
import { DEFAULT_GRID } from '../search/index.js';
import { LIMITS, requestLengthsSchema } from '../twin/index.js';

const rate = z.number().min(0).max(LIMITS.maxRatePerAdapter);
const rank = z.number().int().positive().max(1024);
const gridValues = z.array(z.number().int().positive().max(LIMITS.maxAdapters)).min(1).max(64);

export const recommendWorkloadSchema = z.strictObject({
  rates: z
    .array(rate)
    .min(1)
    .max(LIMITS.maxGroups)
    .meta({ description: 'Requests per second of each adapter group' }),
  ranks: z
    .array(rank)
    .min(1)
    .max(LIMITS.maxGroups)
    .meta({ description: 'LoRA rank of each adapter group' }),
  requestLengths: requestLengthsSchema.optional(),
});

export const sloSchema = z
  .strictObject({
    ttftP99Ms: z.number().positive().optional(),
    itlP99Ms: z.number().positive().optional(),
  })
  .meta({
    description:
      'Latency targets. A pair meets them when the one-sided 90% bounds of its predictions do (sloMs; their coverage is measured on real runs: docs/validation/twin.md). Each limit has its own bound: with both set, both hold together somewhat less often (docs/latency.md).',
  });

export const recommendRequestSchema = z
  .strictObject({
    profile: z.string().min(1).max(200),
    workload: recommendWorkloadSchema,
    method: z.enum(['model', 'twin', 'auto']).default('auto').meta({
      description:
        "model: the forest, with closed-form checks (start-up, capacity bound, the chance each neighbouring pair serves, read off the steady-state estimate) and no simulation, in microseconds (no slo, no objective stable). twin: the twin's grid search, seconds. auto: the forest's answer checked and refined with the twin; outside the forest's training envelope or under an slo, the twin's grid search started from it",
    }),
    search: z
      .strictObject({
        concurrent: gridValues.optional().meta({ description: 'Candidate --max-cpu-loras values' }),
        parallel: gridValues.optional().meta({ description: 'Candidate --max-loras values' }),
      })
      .optional(),
    starvationThreshold: z.number().gt(0).lt(1).default(0.1),
    slo: sloSchema.optional(),
    objective: z.enum(['paper', 'stable']).default('paper').meta({
      description:
        'paper (default, the published rule): the highest throughput that does not starve, i.e. completes at least 1 - starvationThreshold of the offered tokens, so up to 10% may pile up in a queue that grows all hour. stable: the highest throughput that completes at least 99% of the offered tokens with a queue that does not grow.',
    }),
  })
  .superRefine((r, ctx) => {
    // The forest predicts the paper's optimum only: it can check neither an SLO nor stability.
    if (r.method === 'model' && (r.slo !== undefined || r.objective === 'stable'))
      ctx.addIssue({
        code: 'custom',
        path: ['method'],
        message:
          'method "model" answers from the forest alone, which predicts the paper\'s optimum and no latency: with an slo or objective "stable" use "auto" or "twin"',
      });
    // vLLM requires max_loras <= max_cpu_loras: a slot count above every adapter count is no pair.
    const concurrent = r.search?.concurrent ?? DEFAULT_GRID.concurrent;
    const largest = Math.max(...concurrent);
    r.search?.parallel?.forEach((p, i) => {
      if (p > largest)
        ctx.addIssue({
          code: 'custom',
          path: ['search', 'parallel', i],
          message: `${p} slots exceed every concurrent candidate (the largest is ${largest}); vLLM requires --max-loras <= --max-cpu-loras`,
        });
    });
  })
  .meta({
    id: 'RecommendRequest',
    examples: [
      {
        profile: 'h100-64gb/llama-3.1-8b-instruct',
        workload: { rates: [0.1, 0.05, 0.025], ranks: [8, 16] },
        method: 'auto',
      },
      {
        profile: 'h100-64gb/qwen-2.5-7b-instruct',
        workload: { rates: [1.6, 0.8, 0.4], ranks: [16] },
        method: 'twin',
        search: { concurrent: [16, 32, 64, 96, 128], parallel: [16, 32, 64] },
        slo: { itlP99Ms: 200 },
      },
      {
        profile: 'h100-64gb/llama-3.1-8b-instruct',
        workload: { rates: [0.4, 0.05, 0.0125], ranks: [8, 16, 16] },
        method: 'auto',
        slo: { ttftP99Ms: 5000, itlP99Ms: 300 },
        objective: 'stable',
      },
    ],
  });
export type RecommendRequest = z.output<typeof recommendRequestSchema>;
export type RecommendRequestInput = z.input<typeof recommendRequestSchema>;

export const evaluatedPointSchema = z.object({
  concurrentAdapters: z.number(),
  parallelAdapters: z.number(),
  feasible: z.boolean(),
  simulated: z.boolean(),
  throughputTokensPerSecond: z.number(),
  offeredTokensPerSecond: z.number(),
  starving: z.boolean(),
  sloViolated: z.boolean(),
  stable: z.boolean().meta({
    description: 'Completes at least 99% of its offered load with a queue that does not grow',
  }),
  ttftP99Ms: z.number().meta({ description: 'Predicted p99 TTFT (0 when not simulated)' }),
  itlP99Ms: z.number().meta({ description: 'Predicted p99 ITL (0 when not simulated)' }),
  latency: latencyPredictionSchema.optional(),
});

export const recommendationSchema = z.object({
  concurrentAdapters: z
    .number()
    .meta({ description: '--max-cpu-loras: adapters to place on this GPU' }),
  parallelAdapters: z
    .number()
    .meta({ description: '--max-loras: distinct adapters one batch may mix' }),
  maxLoraRank: z.number(),
  throughputTokensPerSecond: z.number(),
  offeredTokensPerSecond: z.number(),
  starving: z.boolean(),
  latency: latencyPredictionSchema.optional().meta({
    description:
      'Predicted p50 and p99 TTFT and ITL with intervals; absent for method "model", which runs no simulation',
  }),
  headroom: z.object({
    percent: z.number().nullable().meta({
      description:
        'How much every rate can grow, in percent, before this pair starves (0: it is at the edge; null: there is no load to grow)',
    }),
    atLeast: z.boolean().meta({
      description:
        'True when the pair still serves at doubled rates, the largest load tried: the headroom is at least `percent`',
    }),
    method: z.enum(['twin-bisection', 'capacity-bound']).meta({
      description:
        'twin-bisection: the twin at scaled rates, to within the resolution given; capacity-bound: the closed-form GPU capacity, an upper bound (method "model")',
    }),
    resolutionPercent: z.number(),
  }),
  binding: z
    .object({
      limit: z.enum(['starvation', 'stability', 'ttftP99Ms', 'itlP99Ms']),
      detail: z.string(),
    })
    .optional()
    .meta({
      description:
        "What stops a busier pair: the next evaluated pair on the answer's line (same slots), or, where that line was not climbed, the nearest evaluated pair with more adapters and more slots. Absent when no busier pair was evaluated",
    }),
  warnings: z.array(z.string()).meta({
    description:
      'Plain statements an operator must see: a queue that grows over the hour, uncalibrated latency, an extrapolation',
  }),
});

export const explanationSchema = z.object({
  summary: z.string(),
  featureEffects: z
    .array(
      z.object({
        feature: z.string(),
        value: z.number(),
        concurrentLog2Effect: z.number(),
        parallelLog2Effect: z.number(),
      }),
    )
    .optional(),
  featureImportance: z.record(z.string(), z.number()).optional(),
  modelUncertaintyLog2: z.number().optional(),
});

export const recommendResponseSchema = z
  .object({
    recommendation: recommendationSchema,
    vllmArgs: z.array(z.string()),
    method: z.enum(['model', 'twin', 'auto']),
    objective: z.enum(['paper', 'stable']),
    envelope: z.enum(['inside', 'outside']).optional().meta({
      description:
        "Whether the workload lies inside the ranges the forest was trained on (absent without a forest). Outside, `model`'s answer is an extrapolation and `auto` answers with the twin search.",
    }),
    outsideEnvelope: z
      .array(outsideFeatureSchema)
      .optional()
      .meta({ description: 'The features outside the training ranges, with those ranges' }),
    explanation: explanationSchema,
    evaluated: z.array(evaluatedPointSchema),
  })
  .meta({ id: 'Recommendation' });
export type RecommendResponse = z.infer<typeof recommendResponseSchema>;
