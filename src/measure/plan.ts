import { z } from 'zod';
import { kvCacheTokens, vllmStarts, type Profile } from '../twin/profile.js';
import { capacityTokensPerSecond } from '../twin/capacity.js';
import { scenarioSchema } from '../twin/scenario.js';
import { simulate } from '../twin/simulate.js';

/**
 * What one experiment identifies, by profile term: the plan says which terms it covers and which
 * stay at the derived profile's value when the budget leaves their experiments out.
 */
export const TERMS = [
  'kvCache',
  'stepTime.base.perDecodeSeq',
  'stepTime.base.perKvKiloToken',
  'stepTime.base.perPrefillToken',
  'stepTime.lora',
  'adapterLoad',
  'servingFit',
] as const;
export type Term = (typeof TERMS)[number];

export const experimentSchema = z.object({
  id: z.string(),
  purpose: z.string(),
  identifies: z.array(z.enum(TERMS)),
  /** `vllm serve MODEL` arguments (vLLM 0.8.5's parser; docs/measure.md cites each). */
  serverArgs: z.array(z.string()),
  /** Adapters to create (dummy, random weights, PEFT layout) and serve, by rank. */
  adapters: z.array(z.object({ name: z.string(), rank: z.number().int().positive() })),
  load: z.discriminatedUnion('kind', [
    /** Start the server, read its KV cache size from the log, stop. */
    z.object({ kind: z.literal('startup') }),
    /** A fixed number of requests in flight, each a fixed prompt and output length. */
    z.object({
      kind: z.literal('closed'),
      concurrency: z.number().int().positive(),
      promptTokens: z.number().int().positive(),
      outputTokens: z.number().int().positive(),
      requests: z.number().int().positive(),
    }),
    /** Poisson arrivals per adapter at its rate, for durationSeconds. */
    z.object({
      kind: z.literal('poisson'),
      ratesPerAdapter: z.array(z.number().positive()),
      promptTokens: z.number().int().positive(),
      outputTokens: z.number().int().positive(),
      durationSeconds: z.number().positive(),
    }),
  ]),
  /** Server start, load and stop, as planned. */
  estimatedMinutes: z.number().positive(),
});
export type Experiment = z.infer<typeof experimentSchema>;

export const planSchema = z.object({
  schemaVersion: z.literal(1),
  gpu: z.string(),
  model: z.string(),
  profile: z.string(),
  vllmVersions: z.array(z.string()),
  ranks: z.array(z.number().int().positive()),
  budgetMinutes: z.number().positive(),
  plannedMinutes: z.number(),
  experiments: z.array(experimentSchema),
  /** Terms no planned experiment identifies: they stay at the derived profile's value. */
  uncovered: z.array(z.object({ term: z.enum(TERMS), why: z.string() })),
});
export type MeasurePlan = z.infer<typeof planSchema>;

/** The value of `--name=value` among an experiment's server arguments, as a number. */
export function serverFlag(args: readonly string[], name: string): number | undefined {
  const arg = args.find((a) => a.startsWith(`--${name}=`));
  return arg === undefined ? undefined : Number(arg.slice(name.length + 3));
}

/** Minutes a vLLM server takes to start (weights, profiling, CUDA graphs) and stop. */
const SERVER_MINUTES = 2;

/**
 * Flags every experiment sets explicitly, because newer vLLM versions changed their defaults:
 * the token budget (2048 in 0.8.5's V1 OpenAI server, larger later), prefix caching (on by
 * default in V1, which would make repeated synthetic prompts free) and the memory share.
 */
const BATCHED_TOKENS = 2048;
/** Sequences a server may run at once: every experiment's, and the serving runs' twin scenario. */
const MAX_NUM_SEQS = 512;
const PINNED = [
  `--max-num-batched-tokens=${BATCHED_TOKENS}`,
  '--no-enable-prefix-caching',
  '--gpu-memory-utilization=0.9',
  '--disable-log-requests',
];

const adaptersOf = (count: number, rank: number) =>
  Array.from({ length: count }, (_, i) => ({ name: `dummy-r${rank}-${i}`, rank }));
const loraArgs = (slots: number, served: number, rank: number) => [
  '--enable-lora',
  `--max-loras=${slots}`,
  `--max-cpu-loras=${served}`,
  `--max-lora-rank=${rank}`,
];

const SERVING_ADAPTERS = 32;
const SERVING_SLOTS = 16;
const SERVING_LENGTH = 256;

/** The serving runs' scenario on the twin: 32 adapters over 16 slots, 256 + 256 tokens. */
function servingScenario(profile: Profile, rank: number, ratePerAdapter: number, seconds: number) {
  return scenarioSchema.parse({
    profile: profile.id,
    config: {
      maxLoras: SERVING_SLOTS,
      maxCpuLoras: SERVING_ADAPTERS,
      maxLoraRank: rank,
      maxNumBatchedTokens: BATCHED_TOKENS,
      maxNumSeqs: MAX_NUM_SEQS,
    },
    workload: {
      rates: [ratePerAdapter],
      ranks: [rank],
      requestLengths: { kind: 'fixed', input: SERVING_LENGTH, output: SERVING_LENGTH },
    },
    durationSeconds: seconds,
    seed: 1,
  });
}

/**
 * The highest per-adapter rate at which the twin on `profile` does not starve the serving runs'
 * setup, by bisection between 0 and the capacity bound (which no rate above can keep up with).
 * The bound alone is optimistic: adapter loads and the batches max_loras splits are not in it.
 */
function servingEdgeRate(profile: Profile, rank: number): number {
  const bound =
    capacityTokensPerSecond(profile, { prompt: SERVING_LENGTH, output: SERVING_LENGTH }) /
    (2 * SERVING_LENGTH) /
    SERVING_ADAPTERS;
  let low = 0;
  let high = bound;
  for (let i = 0; i < 8; i++) {
    const mid = (low + high) / 2;
    if (simulate(servingScenario(profile, rank, mid, 600), profile).starving) high = mid;
    else low = mid;
  }
  return low;
}

/**
 * A plan whose experiments together identify the profile's terms, cheapest and most telling first,
 * cut to the budget. `profile` is the derived profile of that GPU and model: it says which slot
 * counts start and where the starvation edge lies, so the serving runs are placed near it.
 */
export function measurePlan(
  profile: Profile,
  options: { ranks: number[]; budgetMinutes: number; maxModelLen: number },
): MeasurePlan {
  const ranks = [...new Set(options.ranks)].sort((a, b) => a - b);
  const top = ranks[ranks.length - 1]!;
  const base = [
    `--max-model-len=${options.maxModelLen}`,
    `--max-num-seqs=${MAX_NUM_SEQS}`,
    ...PINNED,
  ];
  const candidates: Experiment[] = [];
  const startable = (slots: number, rank: number) => vllmStarts(profile, slots, rank);
  // 1. The KV cache per (slots, rank): start-ups only, read from the log.
  for (const rank of ranks)
    for (const slots of [8, 64, 192].filter((s) => startable(s, rank)))
      candidates.push({
        id: `kv-${slots}x${rank}`,
        purpose: `KV cache with ${slots} slots of rank ${rank} (derived: ${kvCacheTokens(profile, slots, rank)} tokens)`,
        identifies: ['kvCache'],
        serverArgs: [...base, ...loraArgs(slots, slots, rank)],
        adapters: adaptersOf(1, rank),
        load: { kind: 'startup' },
        estimatedMinutes: SERVER_MINUTES,
      });
  // 2. Decode step time against batch size: fixed concurrency, short prompts, no LoRA.
  for (const concurrency of [1, 32, 128, 384])
    candidates.push({
      id: `decode-${concurrency}`,
      purpose: `decode steps at ${concurrency} sequences in flight (short prompts, 512 output tokens)`,
      identifies: ['stepTime.base.perDecodeSeq', 'stepTime.base.perKvKiloToken'],
      serverArgs: base,
      adapters: [],
      load: {
        kind: 'closed',
        concurrency,
        promptTokens: 16,
        outputTokens: 512,
        requests: Math.max(8, 4 * concurrency),
      },
      estimatedMinutes: SERVER_MINUTES + 2,
    });
  // 2b. Decode at long context: the short-prompt decode loads grow the KV cache in use with the
  // batch, so per sequence and per KV token move together there; 32 long sequences hold many
  // times the KV tokens of 32 short ones at the same batch size, which tells the two apart. A
  // prompt fits one step's token budget, so each is prefilled in one step, not in chunks.
  const longOutput = 256;
  const longPrompt =
    Math.floor(
      Math.min(
        BATCHED_TOKENS - 256,
        options.maxModelLen - longOutput - 16,
        (0.7 * kvCacheTokens(profile, 1, ranks[0]!)) / 32 - longOutput,
      ) / 256,
    ) * 256;
  if (longPrompt >= 1024)
    candidates.push({
      id: 'decode-long',
      purpose: `decode steps at 32 sequences in flight with ${longPrompt}-token prompts: the KV cache in use apart from the batch size`,
      identifies: ['stepTime.base.perKvKiloToken', 'stepTime.base.perDecodeSeq'],
      serverArgs: base,
      adapters: [],
      load: {
        kind: 'closed',
        concurrency: 32,
        promptTokens: longPrompt,
        outputTokens: longOutput,
        requests: 128,
      },
      estimatedMinutes: SERVER_MINUTES + 2,
    });
  // 3. Prefill: long prompts, one output token.
  candidates.push({
    id: 'prefill',
    purpose: 'prefill cost: 1024-token prompts, one output token, 64 in flight',
    identifies: ['stepTime.base.perPrefillToken'],
    serverArgs: base,
    adapters: [],
    load: { kind: 'closed', concurrency: 64, promptTokens: 1024, outputTokens: 1, requests: 2048 },
    estimatedMinutes: SERVER_MINUTES + 2,
  });
  // 4. LoRA cost against slots and distinct adapters in a batch.
  for (const slots of [8, 64].filter((s) => startable(s, top)))
    candidates.push({
      id: `lora-${slots}x${top}`,
      purpose: `LoRA step cost with ${slots} slots, ${slots} distinct adapters, 128 in flight`,
      identifies: ['stepTime.lora'],
      serverArgs: [...base, ...loraArgs(slots, slots, top)],
      adapters: adaptersOf(slots, top),
      load: {
        kind: 'closed',
        concurrency: 128,
        promptTokens: 64,
        outputTokens: 256,
        requests: 1024,
      },
      estimatedMinutes: SERVER_MINUTES + 3,
    });
  // 5. Adapter loads: twice as many adapters as slots, so they swap.
  candidates.push({
    id: `loads-8x${top}`,
    purpose: 'adapter loads: 32 adapters over 8 slots, requests spread evenly',
    identifies: ['adapterLoad'],
    serverArgs: [...base, ...loraArgs(8, 32, top)],
    adapters: adaptersOf(32, top),
    load: {
      kind: 'poisson',
      ratesPerAdapter: Array(32).fill(0.2),
      promptTokens: 64,
      outputTokens: 64,
      durationSeconds: 180,
    },
    estimatedMinutes: SERVER_MINUTES + 3,
  });
  // 6. Poisson serving runs near the starvation edge the derived profile's twin predicts.
  const edge = startable(16, top) ? servingEdgeRate(profile, top) : 0;
  for (const [i, share] of (edge > 0 ? [0.6, 0.85, 1.05] : []).entries()) {
    const adapters = SERVING_ADAPTERS;
    const rate = share * edge;
    candidates.push({
      id: `serving-${i + 1}`,
      purpose: `Poisson serving at ${Math.round(100 * share)}% of the starvation edge the derived profile's twin gives, 32 adapters over 16 slots`,
      identifies: ['servingFit'],
      serverArgs: [...base, ...loraArgs(16, adapters, top)],
      adapters: adaptersOf(adapters, top),
      load: {
        kind: 'poisson',
        ratesPerAdapter: Array(adapters).fill(Number(rate.toPrecision(3))),
        promptTokens: 256,
        outputTokens: 256,
        durationSeconds: 600,
      },
      estimatedMinutes: SERVER_MINUTES + 10,
    });
  }
  // Most telling first, so a short budget keeps one experiment per term before any second one.
  const byTerm = new Map<Term, Experiment[]>();
  for (const e of candidates)
    byTerm.set(e.identifies[0]!, [...(byTerm.get(e.identifies[0]!) ?? []), e]);
  const ordered: Experiment[] = [];
  for (let round = 0; ordered.length < candidates.length; round++)
    for (const list of byTerm.values()) if (list[round]) ordered.push(list[round]!);
  const chosen: Experiment[] = [];
  let minutes = 0;
  for (const e of ordered)
    if (minutes + e.estimatedMinutes <= options.budgetMinutes) {
      chosen.push(e);
      minutes += e.estimatedMinutes;
    }
  const covered = new Set(chosen.flatMap((e) => e.identifies));
  const candidateTerms = new Set(candidates.flatMap((e) => e.identifies));
  const uncovered = TERMS.filter((t) => !covered.has(t)).map((term) => ({
    term,
    why: candidateTerms.has(term)
      ? `no experiment for it fits in ${options.budgetMinutes} minutes: it stays at the derived profile's value`
      : `no server with LoRA slots starts here (the derived KV cache cannot hold --max-model-len ${options.maxModelLen}): it stays at the derived profile's value`,
  }));
  // Keep the plan's own order (by kind), not the budget's.
  chosen.sort((a, b) => candidates.indexOf(a) - candidates.indexOf(b));
  return {
    schemaVersion: 1,
    gpu: profile.gpu,
    model: profile.model,
    profile: profile.id,
    vllmVersions: ['0.8.5'],
    ranks,
    budgetMinutes: options.budgetMinutes,
    plannedMinutes: minutes,
    experiments: chosen,
    uncovered,
  };
}
