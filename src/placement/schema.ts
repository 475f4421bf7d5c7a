import { z } from 'zod';
import { sloSchema } from '../recommend/schema.js';
import { LIMITS, requestLengthsSchema } from '../twin/index.js';

/** Most adapters one placement takes, and the most traffic (beyond it, hundreds of GPUs). */
export const PLACEMENT_LIMITS = { maxAdapters: 10_000, maxTotalRate: 10_000 } as const;

const adapterSchema = z.strictObject({
  id: z.string().min(1).max(200),
  rate: z
    .number()
    .min(0)
    .max(LIMITS.maxRatePerAdapter)
    .meta({ description: 'Requests per second' }),
  rank: z.number().int().positive().max(1024),
});

const currentGpuSchema = z.object({
  adapters: z
    .array(
      z.union([
        z.string().min(1).max(200),
        z.object({ id: z.string().min(1).max(200), weight: z.number().gt(0).max(1).optional() }),
      ]),
    )
    .max(PLACEMENT_LIMITS.maxAdapters),
});

export const placementRequestSchema = z
  .strictObject({
    profile: z.string().min(1).max(200),
    catalog: z.array(adapterSchema).min(1).max(PLACEMENT_LIMITS.maxAdapters),
    requestLengths: requestLengthsSchema.optional(),
    starvationThreshold: z.number().gt(0).lt(1).default(0.1),
    objective: z.enum(['paper', 'stable']).default('paper').meta({
      description:
        "'paper': a GPU serves when it completes at least 1 - starvationThreshold of its load. 'stable': at least 99% with a queue that does not grow.",
    }),
    slo: sloSchema.optional(),
    gpuBudget: z.number().int().positive().max(PLACEMENT_LIMITS.maxAdapters).optional().meta({
      description:
        'At most this many GPUs; what does not fit is listed in `unplaced` with the reason',
    }),
    current: z.array(currentGpuSchema).max(PLACEMENT_LIMITS.maxAdapters).optional().meta({
      description:
        "The placement running now, one entry per GPU (a previous answer's `gpus` can be passed back as is): the answer keeps GPU order and moves few adapters.",
    }),
  })
  .superRefine((r, ctx) => {
    const seen = new Map<string, number>();
    r.catalog.forEach((a, i) => {
      const first = seen.get(a.id);
      if (first !== undefined)
        ctx.addIssue({
          code: 'custom',
          path: ['catalog', i, 'id'],
          message: `duplicate adapter id "${a.id}" (first at catalog[${first}])`,
        });
      else seen.set(a.id, i);
    });
    const total = r.catalog.reduce((s, a) => s + a.rate, 0);
    if (total > PLACEMENT_LIMITS.maxTotalRate)
      ctx.addIssue({
        code: 'custom',
        path: ['catalog'],
        message: `the catalog sends ${Math.round(total)} requests/s in all; the limit is ${PLACEMENT_LIMITS.maxTotalRate}`,
      });
  })
  .meta({
    id: 'PlacementRequest',
    examples: [
      {
        profile: 'h100-64gb/llama-3.1-8b-instruct',
        catalog: [
          { id: 'support-bot', rate: 4, rank: 16 },
          { id: 'sql-writer', rate: 0.5, rank: 8 },
          { id: 'legal-summary', rate: 0.05, rank: 32 },
        ],
      },
    ],
  });
export type PlacementRequest = z.output<typeof placementRequestSchema>;

const flagsSchema = z.object({
  maxLoras: z.number(),
  maxCpuLoras: z.number(),
  maxLoraRank: z.number(),
});

export const placementGpuSchema = z.object({
  id: z.string(),
  adapters: z.array(
    z.object({
      id: z.string(),
      weight: z.number().meta({ description: "Share of the adapter's traffic this GPU receives" }),
      rate: z.number().meta({ description: 'Requests per second this GPU receives for it' }),
    }),
  ),
  flags: flagsSchema,
  vllmArgs: z.array(z.string()),
  offeredTokensPerSecond: z.number(),
  throughputTokensPerSecond: z.number().meta({ description: 'Predicted by the one-hour twin run' }),
  completionRatio: z.number(),
  stable: z.boolean(),
  ttftP99Ms: z.number().meta({ description: 'Predicted p99 TTFT (corrected, as /v1/simulate)' }),
  itlP99Ms: z.number(),
  headroom: z
    .object({
      percentAtLeast: z.number(),
      percentBelow: z.number().nullable(),
    })
    .meta({
      description:
        "How much all this GPU's rates can grow before it stops serving, checked by one one-hour twin run at the largest growth the closed-form estimate allows (5% steps): served there, percentAtLeast is that growth and percentBelow null; not served, percentAtLeast is 0 and percentBelow that growth.",
    }),
});

export const placementResponseSchema = z
  .object({
    profile: z.string(),
    objective: z.enum(['paper', 'stable']),
    gpus: z.array(placementGpuSchema),
    routing: z
      .array(
        z.object({
          id: z.string(),
          replicas: z.array(z.object({ gpu: z.string(), weight: z.number() })),
        }),
      )
      .meta({
        description: 'Adapters placed on more than one GPU, with the weights a router should use',
      }),
    unplaced: z.array(
      z.object({ id: z.string(), rate: z.number(), rank: z.number(), reason: z.string() }),
    ),
    totals: z.object({
      adapters: z.number(),
      placedAdapters: z.number(),
      replicatedAdapters: z.number(),
      gpus: z.number(),
      offeredTokensPerSecond: z.number(),
      throughputTokensPerSecond: z.number(),
      unplacedOfferedTokensPerSecond: z.number(),
    }),
    lowerBound: z.object({
      gpus: z.number(),
      loadBound: z.number(),
      countBound: z.number(),
      ratio: z.number().meta({ description: 'GPUs used / lower bound' }),
      bestGpuByRank: z.array(
        z.object({ maxLoraRank: z.number(), throughputTokensPerSecond: z.number() }),
      ),
    }),
    moves: z
      .object({
        moved: z.number().meta({ description: 'Adapters whose set of GPUs changed' }),
        added: z.number(),
        removed: z.number(),
        freshGpus: z
          .number()
          .meta({ description: 'GPUs a fresh placement of the same catalog uses' }),
      })
      .optional(),
    warnings: z.array(z.string()),
  })
  .meta({ id: 'PlacementResponse' });
export type PlacementResponse = z.infer<typeof placementResponseSchema>;
export type PlacementGpu = z.infer<typeof placementGpuSchema>;
