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

/** A GPU's name in an answer and in `current`: what an orchestrator keys its servers by. */
const gpuIdSchema = z
  .string()
  .min(1)
  .max(100)
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'letters, digits, ".", "_" and "-", starting alnum');

/**
 * Fields of an answer's GPU that `current` accepts and ignores, so an answer can be passed back as
 * is: the adapters (and the id) are the running placement, the rest is what was predicted for it.
 */
const answerEchoFields = {
  flags: z.unknown().optional(),
  vllmArgs: z.unknown().optional(),
  offeredTokensPerSecond: z.unknown().optional(),
  throughputTokensPerSecond: z.unknown().optional(),
  completionRatio: z.unknown().optional(),
  stable: z.unknown().optional(),
  ttftP99Ms: z.unknown().optional(),
  itlP99Ms: z.unknown().optional(),
  headroom: z.unknown().optional(),
};

const currentGpuSchema = z.strictObject({
  id: gpuIdSchema.optional().meta({
    description:
      "The running GPU's name; the answer keeps it (without one, its position: gpu-0...)",
  }),
  adapters: z
    .array(
      z.union([
        z.string().min(1).max(200),
        z.strictObject({
          id: z.string().min(1).max(200),
          weight: z.number().gt(0).max(1).optional(),
          // An answer's adapters carry their rate; the catalog's rates are the ones planned with.
          rate: z.number().optional(),
        }),
      ]),
    )
    .max(PLACEMENT_LIMITS.maxAdapters),
  ...answerEchoFields,
});

/** Weights of an adapter's replicas in `current` must sum to 1, as a router's would. */
const WEIGHT_TOLERANCE = 1e-6;

type CurrentGpuInput = z.infer<typeof currentGpuSchema>;

/** Issues of a running placement that would make it no placement at all. */
function currentIssues(current: readonly CurrentGpuInput[]) {
  const issues: Array<{ path: Array<string | number>; message: string }> = [];
  const names = new Map<string, number>();
  const weights = new Map<string, Array<{ gpu: number; entry: number; weight: number }>>();
  current.forEach((gpu, g) => {
    if (gpu.id !== undefined) {
      const first = names.get(gpu.id);
      if (first !== undefined)
        issues.push({
          path: ['current', g, 'id'],
          message: `GPU id "${gpu.id}" is also current[${first}]'s`,
        });
      else names.set(gpu.id, g);
    }
    const onThisGpu = new Map<string, number>();
    gpu.adapters.forEach((a, e) => {
      const id = typeof a === 'string' ? a : a.id;
      const weight = typeof a === 'string' ? 1 : (a.weight ?? 1);
      const twice = onThisGpu.get(id);
      if (twice !== undefined)
        issues.push({
          path: ['current', g, 'adapters', e],
          message: `adapter "${id}" is listed twice on this GPU (also current[${g}].adapters[${twice}])`,
        });
      else onThisGpu.set(id, e);
      weights.set(id, [...(weights.get(id) ?? []), { gpu: g, entry: e, weight }]);
    });
  });
  for (const [id, entries] of weights) {
    const sum = entries.reduce((s, e) => s + e.weight, 0);
    if (Math.abs(sum - 1) > WEIGHT_TOLERANCE && issues.length < 50)
      issues.push({
        path: ['current', entries[0]!.gpu, 'adapters', entries[0]!.entry],
        message: `adapter "${id}"'s weights sum to ${Number(sum.toFixed(6))} over ${entries
          .map((e) => `current[${e.gpu}].adapters[${e.entry}]`)
          .join(', ')}; a router's weights sum to 1`,
      });
  }
  return issues;
}

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
        "The placement running now, one entry per GPU (a previous answer's `gpus` can be passed back as is): the answer keeps each GPU's `id` (or, without one, its position's name gpu-0, gpu-1...) and moves few adapters. An adapter appears at most once per GPU, and its weights over the GPUs sum to 1.",
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
    if (r.current)
      for (const issue of currentIssues(r.current))
        ctx.addIssue({ code: 'custom', path: issue.path, message: issue.message });
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
      capacityBound: z.number().meta({
        description:
          'The completed share of the offered load over the closed-form capacity of one GPU: a floor no twin result lowers',
      }),
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
