import { describe, expect, it } from 'vitest';
import { simulate, type StepView } from '../src/twin/index.js';
import { NO_LORA_COST, scenario, testProfile } from './helpers.js';

// The mechanisms behind the twin's latency tail, each in a hand-computed case: a decode token
// scheduled in a step waits for the whole step, so whatever else the step carries is its ITL.

function steps(profile: ReturnType<typeof testProfile>, s: ReturnType<typeof scenario>) {
  const seen: StepView[] = [];
  const result = simulate(s, profile, { observer: (v) => seen.push(v) });
  return { result, seen };
}

const sum = (v: StepView) =>
  v.components.decodeMs +
  v.components.prefillMs +
  v.components.recomputeMs +
  v.components.loraMs +
  v.components.schedulerMs +
  v.components.adapterLoadMs;

describe('twin latency tail mechanisms', () => {
  it('a decode that shares its step with a full prefill chunk waits for the chunk', () => {
    // 10 ms per step plus 0.05 ms per prompt token. With one request decoding and a 4000-token
    // prompt arriving, the step carries 1 decode token and a 2047-token chunk of the prompt:
    // 10 + 0.05 * 2047 = 112.35 ms, against 10 ms for a decode-only step.
    const profile = testProfile({
      maxModelLen: 8192,
      stepTime: {
        base: { intercept: 10, perDecodeSeq: 0, perPrefillToken: 0.05, perKvKiloToken: 0 },
        lora: NO_LORA_COST,
      },
    });
    const s = scenario({
      config: { maxLoras: 1, maxCpuLoras: 1, maxLoraRank: 8 },
      workload: {
        rates: [0.5],
        ranks: [8],
        requestLengths: { kind: 'fixed', input: 4000, output: 100 },
      },
      durationSeconds: 600,
      seed: 2,
    });
    const { result, seen } = steps(profile, s);
    // Full steps whose 2048 tokens are one decode token and a 2047-token chunk.
    const shared = seen.filter(
      (v) => v.scheduledTokens === 2048 && Math.abs(v.components.prefillMs - 0.05 * 2047) < 1e-9,
    );
    expect(shared.length).toBeGreaterThan(10);
    for (const v of shared) expect(v.durationMs).toBeCloseTo(112.35, 9);
    const decodeOnly = seen.filter((v) => v.scheduledTokens === v.scheduled.length);
    for (const v of decodeOnly.slice(0, 50)) expect(v.durationMs).toBeCloseTo(10, 9);
    // Those long steps are where the ITL tail comes from: the slowest gaps are chunk steps.
    expect(result.itlMs.p99).toBeGreaterThan(100);
    expect(result.itlMs.p50).toBeCloseTo(10, 1);
  });

  it('an adapter load stalls every decode in its step', () => {
    // Two slots and four adapters: admitting a request of an adapter without a slot loads it
    // (40 ms from host memory, plus 100 ms from disk the first time), and the step the load
    // happens in lasts 10 ms + the load, for the other adapter's decodes too.
    const profile = testProfile({
      adapterLoad: {
        cpuToGpuMs: [],
        cpuToGpuFallback: { intercept: 40, perMaxLoraRank: 0, paddedPenalty: 0 },
        diskToCpuMs: 100,
      },
    });
    const s = scenario({
      config: { maxLoras: 2, maxCpuLoras: 4, maxLoraRank: 8 },
      workload: {
        rates: [0.5],
        ranks: [8],
        adapterCount: 4,
        requestLengths: { kind: 'fixed', input: 50, output: 50 },
      },
      durationSeconds: 600,
      seed: 4,
    });
    const { result, seen } = steps(profile, s);
    const stalled = seen.filter((v) => v.components.adapterLoadMs > 0 && v.scheduled.length > 1);
    expect(stalled.length).toBeGreaterThan(10);
    for (const v of stalled) {
      expect([40, 140, 80, 180, 280]).toContain(v.components.adapterLoadMs);
      expect(v.durationMs).toBeCloseTo(10 + v.components.adapterLoadMs, 9);
    }
    expect(result.adapterLoads).toBeGreaterThan(10);
  });

  it('a preempted request computes its tokens again, and the steps that do so are longer', () => {
    // A KV cache of 100 blocks (1600 tokens) for requests of 300 + 300 tokens: the running batch
    // outgrows it, the last request is preempted and later prefilled again from scratch.
    const profile = testProfile({
      maxModelLen: 1024,
      kvCache: { intercept: 1600 + 10 * 8, perSlotRank: 10, measured: [] },
      stepTime: {
        base: { intercept: 10, perDecodeSeq: 0, perPrefillToken: 0.01, perKvKiloToken: 0 },
        lora: NO_LORA_COST,
      },
    });
    const s = scenario({
      config: { maxLoras: 1, maxCpuLoras: 1, maxLoraRank: 8 },
      workload: {
        rates: [1],
        ranks: [8],
        requestLengths: { kind: 'fixed', input: 300, output: 300 },
      },
      durationSeconds: 300,
      seed: 1,
    });
    const { result, seen } = steps(profile, s);
    expect(result.preemptions).toBeGreaterThan(0);
    const recomputing = seen.filter((v) => v.components.recomputeMs > 0);
    expect(recomputing.length).toBeGreaterThan(0);
    for (const v of recomputing) {
      // Tokens already generated are computed again: more than the 300-token prompt alone.
      expect(v.components.recomputeMs).toBeGreaterThan(0);
      expect(v.durationMs).toBeCloseTo(sum(v), 9);
    }
  });

  it('every step is the sum of its parts', () => {
    const profile = testProfile({
      stepTime: {
        base: { intercept: 5, perDecodeSeq: 0.1, perPrefillToken: 0.02, perKvKiloToken: 0.3 },
        lora: {
          intercept: 1,
          perSlot: 0.05,
          perAdapterInBatch: 0.4,
          perBatchedToken: 0.001,
          perBatchedTokenSlot: 0,
        },
      },
      scheduler: { intercept: 0.2, perRunningRequest: 0.01, perVisitedWaitingRequest: 0.02 },
    });
    const s = scenario({
      config: { maxLoras: 2, maxCpuLoras: 8, maxLoraRank: 8 },
      workload: { rates: [0.3], ranks: [8], adapterCount: 8 },
      durationSeconds: 120,
      seed: 9,
    });
    const { seen } = steps(profile, s);
    expect(seen.length).toBeGreaterThan(100);
    for (const v of seen) expect(v.durationMs).toBeCloseTo(sum(v), 9);
  });
});

describe('queue growth', () => {
  const profile = testProfile();
  const run = (rate: number) =>
    simulate(
      scenario({
        config: { maxLoras: 1, maxCpuLoras: 1, maxLoraRank: 8 },
        workload: {
          rates: [rate],
          ranks: [8],
          requestLengths: { kind: 'fixed', input: 10, output: 10 },
        },
        durationSeconds: 3600,
        seed: 1,
      }),
      profile,
    );

  it('is about zero when the server keeps up', () => {
    // 10 steps of 10 ms per request, one at a time: 0.5 req/s keeps it 5% busy.
    const r = run(0.5);
    expect(Math.abs(r.queueGrowthShare)).toBeLessThan(0.01);
  });

  it('is the share of arrivals left behind when the load exceeds what the server completes', () => {
    // No client cap: an overloaded server's backlog grows by what arrives minus what completes.
    const heavy = simulate(
      scenario({
        config: { maxLoras: 1, maxCpuLoras: 1, maxLoraRank: 8, maxNumSeqs: 1 },
        workload: {
          rates: [20],
          ranks: [8],
          requestLengths: { kind: 'fixed', input: 10, output: 10 },
        },
        durationSeconds: 600,
        seed: 1,
      }),
      profile,
    );
    // One request at a time, 100 ms each: 10 req/s complete out of 20 req/s arriving, so half of
    // the second half's arrivals are still queued at the end.
    expect(heavy.queueGrowthShare).toBeGreaterThan(0.45);
    expect(heavy.queueGrowthShare).toBeLessThan(0.55);
  });
});
