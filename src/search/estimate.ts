import { kvCacheTokens, loraMsPerBatchedToken, type Profile } from '../twin/index.js';
import { createLengthSampler, meanLengths, type RequestLengthSpec } from '../twin/lengths.js';
import { seededStream } from '../twin/random.js';

/** What the estimate needs of the request lengths. */
export interface MeanLengths {
  prompt: number;
  output: number;
  /**
   * KV tokens one running request holds on average. Long requests stay in the batch longer, so
   * this is the output-weighted mean of prompt + half the output, not the plain mean.
   */
  kvPerRunningRequest: number;
}

/** lengthsFor's answers per profile and length spec: 20,000 draws cost tens of milliseconds. */
const lengthsMemo = new WeakMap<Profile, Map<string, MeanLengths>>();
/** Specs remembered per profile: an empirical spec is a request's own, and may be large. */
const LENGTHS_MEMO_ENTRIES = 64;

/** Mean lengths and the length-biased KV of a running request (ShareGPT-like: 20,000 seeded draws). */
export function lengthsFor(profile: Profile, spec: RequestLengthSpec): MeanLengths {
  let memo = lengthsMemo.get(profile);
  if (!memo) lengthsMemo.set(profile, (memo = new Map()));
  const key = JSON.stringify(spec);
  const known = memo.get(key);
  if (known) return known;
  const lengths = drawLengths(profile, spec);
  if (memo.size >= LENGTHS_MEMO_ENTRIES) memo.delete(memo.keys().next().value!);
  memo.set(key, lengths);
  return lengths;
}

function drawLengths(profile: Profile, spec: RequestLengthSpec): MeanLengths {
  const means = meanLengths(spec, profile.requestLengths);
  // Fixed and empirical lengths have their length-biased KV in closed form (an empirical spec is
  // drawn uniformly from its samples): exact, and microseconds where draws take about 18 ms.
  const kvOf = (prompt: number, output: number) =>
    output * (prompt + output / 2 + profile.blockSize / 2);
  if (spec.kind === 'fixed')
    return {
      ...means,
      kvPerRunningRequest:
        spec.output > 0 ? kvOf(spec.input, spec.output) / spec.output : spec.input,
    };
  if (spec.kind === 'empirical') {
    let weighted = 0;
    let outputs = 0;
    for (const [prompt, output] of spec.samples) {
      weighted += kvOf(prompt, output);
      outputs += output;
    }
    if (outputs > 0) return { ...means, kvPerRunningRequest: weighted / outputs };
  }
  const sampler = createLengthSampler(spec, profile.requestLengths, seededStream(1, 99));
  const draw = { prompt: 0, output: 0 };
  let weighted = 0;
  let outputs = 0;
  for (let i = 0; i < 20_000; i++) {
    sampler.sample(draw);
    weighted += draw.output * (draw.prompt + draw.output / 2 + profile.blockSize / 2);
    outputs += draw.output;
  }
  return { ...means, kvPerRunningRequest: weighted / outputs };
}

export interface GpuLoad {
  /** Requests per second of each adapter (or adapter share) the GPU holds. */
  rates: readonly number[];
  /**
   * How many adapters have each rate, where `rates` lists distinct rates instead of one per
   * adapter: the same estimate in time linear in the rate groups, not the adapters (a `model`
   * answer's check of 384 adapters in 3 groups).
   */
  rateCounts?: readonly number[];
  maxLoras: number;
  maxLoraRank: number;
}

export interface GpuEstimate {
  /** Prompt + output tokens per second the GPU completes in steady state. */
  throughputTokensPerSecond: number;
  offeredTokensPerSecond: number;
  /** Requests in the running batch at the steady state (or at the KV limit when overloaded). */
  runningRequests: number;
  /** Expected distinct adapters in one batch (at most maxLoras). */
  adaptersInBatch: number;
  /** Adapters with a request in flight, were slots unlimited: above maxLoras, requests queue for slots. */
  busyAdapters: number;
  stepMs: number;
}

const MAX_NUM_BATCHED_TOKENS = 2048;
const MAX_NUM_SEQS = 2048;

/**
 * The share of the load a server completes when more adapters are busy than it has slots: their
 * requests wait for a slot, and past a point the waiting outgrows the window. Fitted on one-hour
 * twin runs of three Zipf GPUs (95-103 adapters of rank 8, 16 and 32; 2 to 48 slots, busy/slots
 * 1.1 to 19): the loss beyond the window's own tail is about 0.0017 (busy/slots)^1.8, within
 * 0.05 of the twin everywhere there. Rough by design; the twin judges every GPU.
 */
export function slotShortfall(busyAdapters: number, maxLoras: number): number {
  return busyAdapters > maxLoras ? Math.max(0, 1 - 0.0017 * (busyAdapters / maxLoras) ** 1.8) : 1;
}

/**
 * A closed-form steady state of one vLLM server, from the profile's step-time model: the running
 * batch B satisfies Little's law B = lambda x (output tokens x step time), where the step time
 * grows with B, with the prefill tokens arriving per step, with the KV cache in use and with the
 * distinct adapters in the batch (each busy adapter holds a slot for a request's lifetime). When no
 * steady state exists below the KV-cache and token-budget limits, the server is overloaded and
 * completes what a batch at that limit completes.
 *
 * It ignores queueing variance, adapter loads and preemption, so it is a fast first guess: every
 * placement is judged by the twin afterwards. Pure and cheap (microseconds), which is what lets
 * the baselines query it thousands of times, as the published greedy queries its forests.
 */
export function estimateGpu(profile: Profile, lengths: MeanLengths, load: GpuLoad): GpuEstimate {
  const { base, lora } = profile.stepTime;
  const sched = profile.scheduler;
  // Without counts every rate is one adapter's (x 1 is exact: the same sums bit for bit).
  const counts = load.rateCounts;
  const countOf = (i: number) => counts?.[i] ?? 1;
  const lambda = load.rates.reduce((s, r, i) => s + r * countOf(i), 0);
  const tokensPerRequest = lengths.prompt + lengths.output;
  const offered = lambda * tokensPerRequest;
  const kv = kvCacheTokens(profile, load.maxLoras, load.maxLoraRank);
  const kvPerRequest = lengths.kvPerRunningRequest;
  const kvLimit = Math.min(MAX_NUM_SEQS, Math.floor(kv / kvPerRequest));
  const fixedMs =
    base.intercept + lora.intercept + lora.perSlot * load.maxLoras + Math.max(0, sched.intercept);
  const busyUnlimited = (lifetimeSeconds: number) => {
    let busy = 0;
    for (let i = 0; i < load.rates.length; i++)
      busy += countOf(i) * (1 - Math.exp(-load.rates[i]! * lifetimeSeconds));
    return busy;
  };
  const busyAdapters = (lifetimeSeconds: number) =>
    Math.min(load.maxLoras, busyUnlimited(lifetimeSeconds));
  /** Step time (ms) with `running` requests decoding while `servedRate` requests/s arrive. */
  const step = (running: number, servedRate: number, stepMsGuess: number) => {
    const prefillPerStep = (servedRate * lengths.prompt * stepMsGuess) / 1000;
    const lifetime = (lengths.output * stepMsGuess) / 1000;
    const adapters = running > 0 ? busyAdapters(lifetime) : 0;
    const kvInUse = running * kvPerRequest;
    const ms =
      fixedMs +
      base.perDecodeSeq * running +
      base.perPrefillToken * prefillPerStep +
      (base.perKvKiloToken * kvInUse) / 1000 +
      lora.perAdapterInBatch * adapters +
      loraMsPerBatchedToken(profile, load.maxLoras) * (running + prefillPerStep) +
      sched.perRunningRequest * running;
    return { ms, adapters, tokens: running + prefillPerStep };
  };
  // Steady state: iterate B = lambda x output x step(B) to its fixed point.
  let stepMs = fixedMs;
  let running = 0;
  let adapters = 0;
  let steady = true;
  for (let i = 0; i < 200; i++) {
    running = (lambda * lengths.output * stepMs) / 1000;
    const s = step(running, lambda, stepMs);
    adapters = s.adapters;
    if (running > kvLimit || s.tokens > MAX_NUM_BATCHED_TOKENS) {
      steady = false;
      break;
    }
    if (Math.abs(s.ms - stepMs) < 1e-6 * s.ms) {
      stepMs = s.ms;
      break;
    }
    stepMs = s.ms;
    if (i === 199) steady = false;
  }
  if (steady) {
    const busy = busyUnlimited((lengths.output * stepMs) / 1000);
    return {
      throughputTokensPerSecond: offered * slotShortfall(busy, load.maxLoras),
      offeredTokensPerSecond: offered,
      runningRequests: running,
      adaptersInBatch: adapters,
      busyAdapters: busy,
      stepMs,
    };
  }
  // Overloaded: the batch sits at its limit; what it completes per second is the capacity.
  let limit = Math.max(1, kvLimit);
  let served = 0;
  for (let i = 0; i < 50; i++) {
    const s = step(limit, served, stepMs);
    stepMs = s.ms;
    adapters = s.adapters;
    served = (limit * 1000) / (lengths.output * stepMs);
    if (s.tokens > MAX_NUM_BATCHED_TOKENS) limit *= MAX_NUM_BATCHED_TOKENS / s.tokens;
  }
  return {
    throughputTokensPerSecond: Math.min(offered, served * tokensPerRequest),
    offeredTokensPerSecond: offered,
    runningRequests: limit,
    adaptersInBatch: adapters,
    busyAdapters: busyUnlimited((lengths.output * stepMs) / 1000),
    stepMs,
  };
}

/**
 * The estimate of `concurrentAdapters` adapters of a workload's rate groups on `maxLoras` slots:
 * adapter i has the rate of group i mod groups, so the groups are counted, not each adapter.
 * `completionRatio` is the share of the offered load it completes (1 with nothing offered).
 */
export function estimatePair(
  profile: Profile,
  lengths: MeanLengths,
  rates: readonly number[],
  concurrentAdapters: number,
  maxLoras: number,
  maxLoraRank: number,
): GpuEstimate & { completionRatio: number } {
  const groups = rates.length;
  const rateCounts = rates.map(
    (_, g) => Math.floor(concurrentAdapters / groups) + (g < concurrentAdapters % groups ? 1 : 0),
  );
  const e = estimateGpu(profile, lengths, { rates, rateCounts, maxLoras, maxLoraRank });
  const completionRatio =
    e.offeredTokensPerSecond > 0 ? e.throughputTokensPerSecond / e.offeredTokensPerSecond : 1;
  return { ...e, completionRatio };
}
