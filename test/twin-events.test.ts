import { describe, expect, it } from 'vitest';
import { runEngine, type EngineInput } from '../src/twin/engine.js';
import { createLengthSampler } from '../src/twin/lengths.js';
import { kvCacheTokens, type Profile } from '../src/twin/profile.js';
import { seededStream } from '../src/twin/random.js';
import { resolveAdapters } from '../src/twin/simulate.js';
import type { Scenario } from '../src/twin/scenario.js';
import { loadProfile } from '../src/profiles/store.js';
import { runEngine as runStepByStep } from './reference/step-engine.js';
import { scenario } from './helpers.js';

/**
 * The event-driven engine keeps steady decoders implicit; the reference engine (twin 1.2.0's, in
 * test/reference/) visits every running request every step. Same input, same output, bit for bit:
 * counts, latency histograms, step statistics and the timeline of every step.
 */
function input(s: Scenario, profile: Profile, kvScale: number, maxInFlight: number): EngineInput {
  const count = s.workload.adapterCount ?? s.config.maxCpuLoras;
  const adapters = resolveAdapters(s.workload, count, s.seed);
  return {
    profile,
    config: s.config,
    kvCacheTokens: Math.floor(
      kvCacheTokens(profile, s.config.maxLoras, s.config.maxLoraRank) * kvScale,
    ),
    adapterRates: adapters.rates,
    adapterRanks: adapters.ranks,
    lengths: createLengthSampler(
      s.workload.requestLengths,
      profile.requestLengths,
      seededStream(s.seed, 2),
    ),
    arrivals: seededStream(s.seed, 1),
    durationSeconds: s.durationSeconds,
    maxInFlight,
  };
}

function both(s: Scenario, profile: Profile, kvScale = 1, maxInFlight = Infinity) {
  const stepTimes = { events: [] as number[], reference: [] as number[] };
  const decodes: number[] = [];
  const events = runEngine({
    ...input(s, profile, kvScale, maxInFlight),
    stepTimeObserver: (v) => stepTimes.events.push(v.durationMs),
  });
  const reference = runStepByStep({
    ...input(s, profile, kvScale, maxInFlight),
    stepTimeObserver: (v) => {
      stepTimes.reference.push(v.durationMs);
      decodes.push(v.decodeSeqs);
    },
  });
  return { events, reference, stepTimes, decodes };
}

const llama = loadProfile('h100-64gb/llama-3.1-8b-instruct');
const qwen = loadProfile('h100-64gb/qwen-2.5-7b-instruct');

describe('the event-driven twin reproduces the step-by-step engine exactly', () => {
  // Cases chosen to reach every path: KV-bound preemption (small caches), adapter-slot and host
  // memory eviction (few slots, few host adapters), token budgets below the running count (the
  // steady part made explicit again), max_num_seqs, long prompts in chunks, one-token outputs,
  // and the client's in-flight cap.
  const cases: Array<{
    name: string;
    profile: Profile;
    s: Scenario;
    kvScale?: number;
    maxInFlight?: number;
    /** What the case is there to reach, checked on the reference's own counts. */
    reaches?: (reference: ReturnType<typeof runStepByStep>, decodesPerStep: number[]) => void;
  }> = [
    {
      name: 'light, many adapters, 64 slots',
      profile: llama,
      s: scenario({
        config: { maxLoras: 64, maxCpuLoras: 384, maxLoraRank: 16 },
        workload: { rates: [0.1, 0.00625, 0.003125], ranks: [16] },
        durationSeconds: 600,
      }),
      reaches: (r) => expect(r.adapterLoads).toBeGreaterThan(300),
    },
    {
      name: 'slots and host memory churn: 4 slots, 6 host adapters, 30 adapters',
      profile: llama,
      s: scenario({
        config: { maxLoras: 4, maxCpuLoras: 6, maxLoraRank: 16 },
        workload: { rates: [0.2, 0.05], ranks: [8, 16], adapterCount: 30 },
        durationSeconds: 300,
        seed: 21,
      }),
      reaches: (r) => expect(r.adapterLoads).toBeGreaterThan(100),
    },
    {
      name: 'KV-bound with preemption',
      profile: llama,
      s: scenario({
        config: { maxLoras: 32, maxCpuLoras: 160, maxLoraRank: 16 },
        workload: { rates: [0.4, 0.05, 0.0125], ranks: [8, 16, 16] },
        durationSeconds: 300,
        seed: 5,
      }),
      kvScale: 0.1,
      reaches: (r) => expect(r.preemptions).toBeGreaterThan(100),
    },
    {
      name: 'overloaded, 8 slots, host memory for 12',
      profile: qwen,
      s: scenario({
        config: { maxLoras: 8, maxCpuLoras: 12, maxLoraRank: 32 },
        workload: { rates: [3.2, 1.6, 0.025], ranks: [8, 32], adapterCount: 40 },
        durationSeconds: 120,
        seed: 9,
      }),
    },
    {
      name: 'a token budget the running requests use up',
      profile: llama,
      s: scenario({
        config: { maxLoras: 16, maxCpuLoras: 64, maxLoraRank: 16, maxNumBatchedTokens: 64 },
        workload: {
          rates: [0.8, 0.2],
          ranks: [16],
          requestLengths: { kind: 'fixed', input: 20, output: 300 },
        },
        durationSeconds: 200,
        seed: 2,
      }),
      // Steps where decodes alone use the whole budget: running requests outnumber it.
      reaches: (_r, decodes) => expect(Math.max(...decodes)).toBe(64),
    },
    {
      name: 'max_num_seqs binding, long prompts in chunks',
      profile: qwen,
      s: scenario({
        config: { maxLoras: 4, maxCpuLoras: 16, maxLoraRank: 8, maxNumSeqs: 24 },
        workload: {
          rates: [1.5],
          ranks: [8],
          requestLengths: { kind: 'fixed', input: 3000, output: 40 },
        },
        durationSeconds: 200,
        seed: 4,
      }),
    },
    {
      name: 'one-token outputs and a client cap',
      profile: llama,
      s: scenario({
        config: { maxLoras: 2, maxCpuLoras: 3, maxLoraRank: 16 },
        workload: {
          rates: [2, 0.5, 0.1],
          ranks: [16, 8],
          requestLengths: { kind: 'fixed', input: 50, output: 1 },
        },
        durationSeconds: 300,
        seed: 11,
      }),
      maxInFlight: 30,
    },
    {
      name: 'requests longer than max_model_len, blocks preallocated',
      profile: { ...llama, maxModelLen: 1024, preallocateBlocks: 2 },
      s: scenario({
        config: { maxLoras: 8, maxCpuLoras: 16, maxLoraRank: 16 },
        workload: {
          rates: [0.5],
          ranks: [16],
          requestLengths: { kind: 'fixed', input: 900, output: 300 },
        },
        durationSeconds: 120,
        seed: 17,
      }),
    },
    {
      name: 'KV-bound, tiny cache, one slot',
      profile: qwen,
      s: scenario({
        config: { maxLoras: 1, maxCpuLoras: 4, maxLoraRank: 16 },
        workload: { rates: [0.6, 0.3], ranks: [16] },
        durationSeconds: 300,
        seed: 13,
      }),
      kvScale: 0.03,
    },
  ];

  for (const c of cases) {
    it(c.name, () => {
      const { events, reference, stepTimes, decodes } = both(
        c.s,
        c.profile,
        c.kvScale,
        c.maxInFlight,
      );
      expect(reference.completedRequests).toBeGreaterThan(0);
      expect(stepTimes.events).toEqual(stepTimes.reference);
      expect(events).toStrictEqual(reference);
      c.reaches?.(reference, decodes);
    });
  }

  it('on 24 random scenarios across slots, host memory, cache size, budgets, lengths and block caps', () => {
    const u = seededStream(2026, 7);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(u.next() * xs.length)]!;
    for (let i = 0; i < 24; i++) {
      const maxLoras = pick([1, 2, 4, 8, 16, 32, 64]);
      const groups = 1 + Math.floor(u.next() * 3);
      const s = scenario({
        config: {
          maxLoras,
          maxCpuLoras: maxLoras + pick([0, 1, 4, 32, 200]),
          maxLoraRank: pick([8, 16, 32]),
          maxNumBatchedTokens: pick([64, 512, 2048, 8192]),
          maxNumSeqs: pick([16, 128, 2048]),
        },
        workload: {
          rates: Array.from({ length: groups }, () => 0.01 + u.next() * pick([0.2, 1, 4])),
          ranks: [8],
          adapterCount: pick([4, 40, 200]),
          ...(u.next() < 0.3
            ? {
                requestLengths: {
                  kind: 'fixed' as const,
                  input: pick([1, 30, 900]),
                  output: pick([1, 2, 300]),
                },
              }
            : {}),
        },
        durationSeconds: 60,
        seed: i,
      });
      // Block preallocation and a short max_model_len reach the per-request block cap.
      const profile = {
        ...pick([llama, qwen]),
        preallocateBlocks: pick([0, 0, 1, 4]),
        maxModelLen: pick([131072, 1024]),
      };
      const { events, reference } = both(s, profile, pick([1, 0.2, 0.05]));
      expect(events, `scenario ${i}`).toStrictEqual(reference);
    }
  });
});
