import { describe, expect, it } from 'vitest';
import { simulate, type StepView } from '../src/twin/index.js';
import { scenario, testProfile } from './helpers.js';

function collect(profile: ReturnType<typeof testProfile>, s: ReturnType<typeof scenario>) {
  const steps: Array<StepView & { waiting: number[] }> = [];
  const result = simulate(s, profile, {
    observer: (v) => steps.push({ ...v, waiting: v.waitingOrder() }),
  });
  return { result, steps };
}

describe('twin: hand-computed scenarios', () => {
  it('serves isolated requests in one prefill step plus one step per further output token', () => {
    // ~36 requests an hour apart on average; each needs 10 steps of 10 ms, so none overlap.
    const s = scenario({
      config: { maxLoras: 1, maxCpuLoras: 1, maxLoraRank: 8 },
      workload: {
        rates: [0.001],
        ranks: [8],
        requestLengths: { kind: 'fixed', input: 100, output: 10 },
      },
      durationSeconds: 36_000,
      seed: 7,
    });
    const r = simulate(s, testProfile());
    expect(r.arrivedRequests).toBeGreaterThan(20);
    expect(r.completedRequests).toBe(r.arrivedRequests);
    expect(r.ttftMs.mean).toBeCloseTo(10, 6); // the prompt fits one step
    expect(r.itlMs.mean).toBeCloseTo(10, 6);
    expect(r.engineSteps).toBe(10 * r.arrivedRequests);
    expect(r.throughputTokensPerSecond).toBeCloseTo((110 * r.arrivedRequests) / 36_000, 9);
    expect(r.offeredTokensPerSecond).toBeCloseTo(r.throughputTokensPerSecond, 9);
    expect(r.starving).toBe(false);
    expect(r.adapterLoads).toBe(1);
  });

  it('chunks a long prompt over the token budget before the first token', () => {
    // 5000 prompt tokens with a 2048 budget: chunks of 2048, 2048 and 904, then one token.
    const s = scenario({
      config: { maxLoras: 1, maxCpuLoras: 1, maxLoraRank: 8, maxNumBatchedTokens: 2048 },
      workload: {
        rates: [0.001],
        ranks: [8],
        requestLengths: { kind: 'fixed', input: 5000, output: 2 },
      },
      durationSeconds: 36_000,
      seed: 3,
    });
    const profile = testProfile({ maxModelLen: 8192 });
    const { result, steps } = collect(profile, s);
    expect(result.ttftMs.mean).toBeCloseTo(30, 6);
    expect(steps.slice(0, 4).map((v) => v.scheduledTokens)).toEqual([2048, 2048, 904, 1]);
  });

  // One isolated request of 100 prompt and 3 output tokens, rank 8, on a step-time model whose
  // every term is set, so that each term's share of the step can be computed by hand.
  function isolatedRequest(maxLoras: number, perBatchedTokenSlot: number) {
    const profile = testProfile({
      stepTime: {
        base: { intercept: 10, perDecodeSeq: 0.25, perPrefillToken: 0.01, perKvKiloToken: 0.5 },
        lora: {
          intercept: 1,
          perSlot: 0.2,
          perAdapterInBatch: 0.1,
          perBatchedToken: 0.001,
          perBatchedTokenSlot,
        },
      },
    });
    const s = scenario({
      config: { maxLoras, maxCpuLoras: maxLoras, maxLoraRank: 8 },
      workload: {
        rates: [0.001],
        ranks: [8],
        requestLengths: { kind: 'fixed', input: 100, output: 3 },
      },
      durationSeconds: 36_000,
      seed: 5,
    });
    return simulate(s, profile);
  }

  it('times each step from its decode sequences, prefill tokens, KV in use and LoRA terms', () => {
    // One slot:
    // prefill step = 10 + 0.01*100 + 0.5*(7 blocks * 16 / 1000) + lora(1 + 0.2*1 + 0.1*1 + 0.001*100)
    //             = 10 + 1 + 0.056 + 1.4 = 12.456 ms
    // decode step  = 10 + 0.25*1 + 0.5*(7*16/1000) + lora(1 + 0.2 + 0.1 + 0.001) = 11.607 ms
    const r = isolatedRequest(1, 0);
    expect(r.ttftMs.mean).toBeCloseTo(12.456, 6);
    expect(r.itlMs.mean).toBeCloseTo(11.607, 6);
  });

  it("charges the LoRA kernels' thread blocks for every slot: batched tokens x (max_loras + 1)", () => {
    // vLLM 0.8.5 launches the shrink and expand kernels' blocks for every slot, idle ones
    // included. The same request on a server with 3 slots:
    // prefill step = 10 + 1 + 0.056 + lora(1 + 0.2*3 + 0.1*1 + (0.001 + 0.002*4)*100) = 13.656 ms
    // decode step  = 10 + 0.25 + 0.056 + lora(1 + 0.6 + 0.1 + 0.009*1)                  = 12.015 ms
    const r = isolatedRequest(3, 0.002);
    expect(r.ttftMs.mean).toBeCloseTo(13.656, 6);
    expect(r.itlMs.mean).toBeCloseTo(12.015, 6);
  });

  it('counts only requests completed inside the window', () => {
    // Each request needs 1000 steps of 10 ms = 10 s; a 5 s window completes none of them.
    const s = scenario({
      config: { maxLoras: 4, maxCpuLoras: 4, maxLoraRank: 8 },
      workload: {
        rates: [1],
        ranks: [8],
        requestLengths: { kind: 'fixed', input: 10, output: 1000 },
      },
      durationSeconds: 5,
      seed: 1,
    });
    const r = simulate(s, testProfile());
    expect(r.arrivedRequests).toBeGreaterThan(5);
    expect(r.completedRequests).toBe(0);
    expect(r.throughputTokensPerSecond).toBe(0);
    expect(r.offeredTokensPerSecond).toBeGreaterThan(0);
    expect(r.starving).toBe(true);
  });
});

describe('twin: scheduler invariants under overload', () => {
  // Small KV cache, few slots, many adapters and long requests: preemptions and skips happen.
  const profile = testProfile(
    { kvCache: { intercept: 6_000, perSlotRank: 0, measured: [] }, maxModelLen: 4096 },
    5,
  );
  const s = scenario({
    config: {
      maxLoras: 2,
      maxCpuLoras: 8,
      maxLoraRank: 8,
      maxNumBatchedTokens: 512,
      maxNumSeqs: 64,
    },
    workload: { rates: [20, 10], ranks: [8], requestLengths: { kind: 'sharegpt' } },
    durationSeconds: 20,
    seed: 11,
  });
  const { result, steps } = collect(profile, s);

  it('exercises preemption and adapter skipping', () => {
    expect(result.preemptions).toBeGreaterThan(0);
    expect(steps.some((v) => v.distinctAdapters === 2 && v.waiting.length > 0)).toBe(true);
  });

  it('never exceeds the token budget, the KV blocks, max_num_seqs or max_loras', () => {
    expect(Math.max(...steps.map((v) => v.scheduledTokens))).toBe(512);
    expect(steps.filter((v) => v.scheduledTokens > v.tokenBudget)).toEqual([]);
    expect(steps.filter((v) => v.usedBlocks > v.totalBlocks)).toEqual([]);
    expect(Math.max(...steps.map((v) => v.running.length))).toBeLessThanOrEqual(64);
    expect(Math.max(...steps.map((v) => new Set(v.scheduled.map(v.adapterOf)).size))).toBe(2);
    expect(Math.max(...steps.map((v) => new Set(v.running.map(v.adapterOf)).size))).toBe(2);
  });

  it('preempts from the tail of the running queue and puts the victim first in the waiting queue', () => {
    const withPreemption = steps.filter((v) => v.preempted.length > 0);
    expect(withPreemption.length).toBeGreaterThan(0);
    for (const v of withPreemption) {
      const k = v.preempted.length;
      // Victims are the last k running requests at step start, taken from the end backwards.
      expect(v.preempted).toEqual(v.runningAtStart.slice(-k).reverse());
      // The last victim is at the very front of the waiting queue, the others right behind it.
      expect(v.waiting.slice(0, k)).toEqual([...v.preempted].reverse());
      // Nothing is admitted from the waiting queue in a step that preempted.
      expect(v.running).toEqual(v.runningAtStart.slice(0, v.runningAtStart.length - k));
    }
  });

  it('admits waiting requests FCFS, skipping only those whose adapter cannot join a full batch', () => {
    let skips = 0;
    let reordered = 0;
    const violations: number[] = [];
    for (const v of steps) {
      const before = new Set(v.runningAtStart);
      const admitted = new Set(v.scheduled.filter((r) => !before.has(r)));
      if (admitted.size === 0) continue;
      const batchAdapters = new Set(v.scheduled.map(v.adapterOf));
      const positions = v.waitingAtStart
        .map((r, i) => (admitted.has(r) ? i : -1))
        .filter((i) => i >= 0);
      if (positions.length !== admitted.size) violations.push(-1); // admitted only from the waiting queue
      const last = Math.max(...positions);
      for (const w of v.waitingAtStart.slice(0, last)) {
        if (admitted.has(w)) continue;
        // Passed over although it came first: only allowed for an adapter outside a full batch.
        skips++;
        if (batchAdapters.has(v.adapterOf(w)) || batchAdapters.size !== 2) violations.push(w);
      }
      // A skipped request keeps its place: the waiting queue after the step is the one before it
      // minus the admitted requests, in the same order.
      const kept = v.waitingAtStart.filter((r) => !admitted.has(r));
      if (kept.some((r, i) => v.waiting[i] !== r)) reordered++;
    }
    expect(skips).toBeGreaterThan(0);
    expect(violations).toEqual([]);
    expect(reordered).toBe(0);
  });

  it('gives identical results for the same seed, and different ones for another seed', () => {
    const again = simulate(s, profile);
    expect(again).toEqual(result);
    const other = simulate({ ...s, seed: 12 }, profile);
    expect(other.arrivedRequests).not.toBe(result.arrivedRequests);
  });
});

describe('twin: start-up feasibility', () => {
  it('reports a configuration whose KV cache cannot hold one max_model_len sequence as infeasible', () => {
    // 100k - 10 * 64 * 64 = 59,040 tokens < 65,536 = max_model_len
    const profile = testProfile({ maxModelLen: 65_536 });
    const s = scenario({
      config: { maxLoras: 64, maxCpuLoras: 64, maxLoraRank: 64 },
      workload: { rates: [0.1], ranks: [16] },
      durationSeconds: 600,
    });
    const r = simulate(s, profile);
    expect(r.feasible).toBe(false);
    expect(r.infeasibleReason).toMatch(/cannot hold one 65536-token sequence/);
    expect(r.kvCacheTokens).toBe(59_040);
    expect(r.completedRequests).toBe(0);
    expect(r.offeredTokensPerSecond).toBeGreaterThan(0);
  });

  it('accepts the same configuration with a smaller rank', () => {
    const profile = testProfile({ maxModelLen: 65_536 });
    const s = scenario({
      config: { maxLoras: 64, maxCpuLoras: 64, maxLoraRank: 16 },
      workload: { rates: [0.1], ranks: [16] },
      durationSeconds: 60,
    });
    expect(simulate(s, profile).feasible).toBe(true);
  });
});
