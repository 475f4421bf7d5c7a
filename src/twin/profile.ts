import { z } from 'zod';

/**
 * A quantile function given by knots (p, tokens), interpolated log-linearly between knots:
 * request lengths are skewed over two orders of magnitude, so a straight line in log-space
 * follows their CDF far better than one in linear space.
 */
export const quantileKnotsSchema = z
  .array(z.tuple([z.number().min(0).max(1), z.number().positive()]))
  .min(2)
  .refine((k) => k[0]?.[0] === 0 && k[k.length - 1]?.[0] === 1, 'knots must span p = 0 to p = 1')
  .refine(
    (k) => k.every((knot, i) => i === 0 || (knot[0] > k[i - 1]![0] && knot[1] >= k[i - 1]![1])),
    'knots must increase in p and not decrease in tokens',
  );

export const lengthDistributionSchema = z.object({
  prompt: quantileKnotsSchema,
  output: quantileKnotsSchema,
  /** Requests with prompt + output above this are redrawn (the ShareGPT filter). */
  maxTotalTokens: z.number().int().positive(),
  /** What the knots were fitted to, kept so the fit can be checked. */
  targets: z.object({
    promptMean: z.number(),
    outputMean: z.number(),
    promptStd: z.number(),
    outputStd: z.number(),
    promptQuartiles: z.tuple([z.number(), z.number()]),
    outputQuartiles: z.tuple([z.number(), z.number()]),
  }),
});
export type LengthDistribution = z.infer<typeof lengthDistributionSchema>;

/**
 * What a profile rests on: fitted to measured runs of that GPU and model ("measured"), refitted
 * from the user's own measurement kit ("calibrated"), or derived from a datasheet and a model
 * config with factors learned elsewhere ("derived"). Absent means "measured" (the shipped files).
 */
export const evidenceSchema = z.enum(['measured', 'calibrated', 'derived']);
export type Evidence = z.infer<typeof evidenceSchema>;

export const profileSchema = z.object({
  schemaVersion: z.literal(1),
  id: z.string(),
  evidence: evidenceSchema.optional(),
  gpu: z.string(),
  model: z.string(),
  vllmVersion: z.string(),
  /** vLLM refuses to start when the KV cache cannot hold one sequence of this many tokens. */
  maxModelLen: z.number().int().positive(),
  blockSize: z.number().int().positive(),
  /**
   * Extra blocks allocated whenever a request grows. Early V1 preallocated 64 tokens (4 blocks);
   * vLLM PR #16941 removed that before 0.8.5, so the shipped profiles use 0.
   */
  preallocateBlocks: z.number().int().min(0),
  allowedLoraRanks: z.array(z.number().int().positive()).min(1),
  kvCache: z.object({
    /**
     * kvCacheTokens = intercept - perSlotRank * maxLoras * maxLoraRank - perSlot * maxLoras,
     * where not measured (perSlot: rank-independent slot memory, such as embedding LoRA's).
     */
    intercept: z.number(),
    perSlotRank: z.number(),
    perSlot: z.number().optional(),
    measured: z.array(
      z.object({
        maxLoras: z.number().int(),
        maxLoraRank: z.number().int(),
        kvCacheTokens: z.number().int().nullable(),
      }),
    ),
    /**
     * For derived profiles: vLLM's memory accounting replayed per rank, kvCacheTokens[n - 1] for
     * n slots, up to the first n at which vLLM would not start. The caching allocator's gaps
     * beside the slot buffers make this uneven in n, which the linear form cannot follow.
     */
    accounted: z
      .array(
        z.object({
          maxLoraRank: z.number().int(),
          kvCacheTokens: z.array(z.number().int().min(0)).min(1),
          /** The most the table falls below the linear form: taken off it beyond the table. */
          gapTokens: z.number().min(0),
        }),
      )
      .optional(),
  }),
  /**
   * Step time in ms = base + lora + scheduler + adapter loads, where
   * base = intercept + perDecodeSeq*D + perPrefillToken*P + perKvKiloToken*(KV tokens in use)/1000
   * (fitted on no-LoRA runs) and, with LoRA enabled,
   * lora = intercept + perSlot*maxLoras + perAdapterInBatch*U
   *        + (perBatchedToken + perBatchedTokenSlot*(maxLoras + 1))*(D + P)
   * (U = distinct adapters in the batch; fitted on serving runs, see docs/profiles.md).
   */
  stepTime: z.object({
    base: z.object({
      intercept: z.number(),
      perDecodeSeq: z.number(),
      perPrefillToken: z.number(),
      perKvKiloToken: z.number(),
    }),
    lora: z.object({
      intercept: z.number(),
      perSlot: z.number(),
      perAdapterInBatch: z.number(),
      perBatchedToken: z.number(),
      /**
       * vLLM 0.8.5's LoRA kernels launch thread blocks for every 32-token block times every slot
       * (max_loras + 1), the idle ones exiting at once: a cost in tokens x slots.
       */
      perBatchedTokenSlot: z.number(),
    }),
  }),
  scheduler: z.object({
    intercept: z.number(),
    perRunningRequest: z.number(),
    /** Cost of each waiting request the FCFS scan visits (admitted or skipped). */
    perVisitedWaitingRequest: z.number(),
  }),
  adapterLoad: z.object({
    cpuToGpuMs: z.array(
      z.object({ maxLoraRank: z.number().int(), adapterRank: z.number().int(), ms: z.number() }),
    ),
    /** Used for pairs the table lacks: ms = intercept + perMaxLoraRank*maxLoraRank + paddedPenalty*[rank < maxLoraRank]. */
    cpuToGpuFallback: z.object({
      intercept: z.number(),
      perMaxLoraRank: z.number(),
      paddedPenalty: z.number(),
    }),
    diskToCpuMs: z.number(),
  }),
  requestLengths: lengthDistributionSchema,
  /** The measurements' benchmark client failed requests beyond this many in flight (ephemeral ports). */
  measurementClientMaxInFlight: z.number().int().positive(),
  fit: z.record(z.string(), z.unknown()),
  /** For derived profiles: the datasheet, config, flags and factors it came from (src/derive). */
  derivation: z.record(z.string(), z.unknown()).optional(),
});
export type Profile = z.infer<typeof profileSchema>;

/** KV tokens the server gets for this many slots of this rank (0 where vLLM failed to start). */
export function kvCacheTokens(profile: Profile, maxLoras: number, maxLoraRank: number): number {
  const measured = profile.kvCache.measured.find(
    (m) => m.maxLoras === maxLoras && m.maxLoraRank === maxLoraRank,
  );
  // A measured start-up failure (KV or CUDA memory) means no cache at all.
  if (measured) return measured.kvCacheTokens ?? 0;
  const accounted = profile.kvCache.accounted?.find((a) => a.maxLoraRank === maxLoraRank);
  if (accounted && maxLoras >= 1) {
    const table = accounted.kvCacheTokens;
    if (maxLoras <= table.length) return table[maxLoras - 1]!;
    // Past the table (where vLLM no longer starts, or beyond its slots): the linear form less
    // the largest gap the table saw, and never more than the table's last entry.
    const linear = linearKvCacheTokens(profile, maxLoras, maxLoraRank) - accounted.gapTokens;
    const blocks = Math.max(0, Math.floor(linear / profile.blockSize)) * profile.blockSize;
    return Math.min(table[table.length - 1]!, blocks);
  }
  return linearKvCacheTokens(profile, maxLoras, maxLoraRank);
}

function linearKvCacheTokens(profile: Profile, maxLoras: number, maxLoraRank: number): number {
  const estimate =
    profile.kvCache.intercept -
    profile.kvCache.perSlotRank * maxLoras * maxLoraRank -
    (profile.kvCache.perSlot ?? 0) * maxLoras;
  // Round down to whole blocks, as vLLM sizes the cache in blocks.
  return Math.max(0, Math.floor(estimate / profile.blockSize) * profile.blockSize);
}

/**
 * LoRA ms per batched token on a server with `maxLoras` slots: the kernels' own per-token work
 * plus the thread blocks they launch for every slot (max_loras + 1) per token block.
 */
export function loraMsPerBatchedToken(profile: Profile, maxLoras: number): number {
  const lora = profile.stepTime.lora;
  return lora.perBatchedToken + lora.perBatchedTokenSlot * (maxLoras + 1);
}

/** vLLM starts only when its KV cache can hold one max_model_len sequence beside the slots. */
export function vllmStarts(profile: Profile, maxLoras: number, maxLoraRank: number): boolean {
  return kvCacheTokens(profile, maxLoras, maxLoraRank) >= profile.maxModelLen;
}

export function cpuToGpuLoadMs(profile: Profile, maxLoraRank: number, adapterRank: number): number {
  const row = profile.adapterLoad.cpuToGpuMs.find(
    (r) => r.maxLoraRank === maxLoraRank && r.adapterRank === adapterRank,
  );
  if (row) return row.ms;
  const f = profile.adapterLoad.cpuToGpuFallback;
  return (
    f.intercept + f.perMaxLoraRank * maxLoraRank + (adapterRank < maxLoraRank ? f.paddedPenalty : 0)
  );
}

export const evidenceOf = (profile: Profile): Evidence => profile.evidence ?? 'measured';
