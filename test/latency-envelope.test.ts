import { describe, expect, it } from 'vitest';
import { MEASUREMENTS_DIR } from '../src/calibrate/calibrate.js';
import { readServingRuns } from '../src/calibrate/runs.js';
import { latencyEnvelopeOf, lengthLabel, outsideLatencyEnvelope } from '../src/latency/index.js';
import { loadLatencyModel } from '../src/profiles/latency.js';
import { loadProfile } from '../src/profiles/store.js';
import { parseScenario } from '../src/runtime/scenario-runner.js';
import { latencyCaseOf } from '../src/search/index.js';
import { vllmStarts } from '../src/twin/index.js';
import { measuredCase } from './helpers.js';

const measured = measuredCase;

// Two measured workloads: a light one at 8 x 8 and a heavy one at 256 x 128, rank 32.
const envelope = latencyEnvelopeOf([
  measured({ maxLoras: 8, maxCpuLoras: 8 }),
  measured({
    rates: [1.6, 0.8, 0.4, 0],
    ranks: [8, 16, 32],
    maxLoras: 128,
    maxCpuLoras: 256,
    maxLoraRank: 32,
  }),
]);
const config = {
  maxLoras: 16,
  maxCpuLoras: 64,
  maxLoraRank: 16,
  maxNumBatchedTokens: 2048,
  maxNumSeqs: 2048,
};

describe('the latency envelope', () => {
  it('spans the measured runs, counting only adapters that send requests', () => {
    expect(envelope).toEqual({
      ratePerAdapter: [0.025, 1.6],
      // Means of the rate groups: 0.1/0.05/0.025 and 1.6/0.8/0.4/0 (an idle group counts).
      meanRatePerAdapter: [(0.1 + 0.05 + 0.025) / 3, (1.6 + 0.8 + 0.4 + 0) / 4],
      adapterRank: [8, 32],
      maxLoraRank: [16, 32],
      concurrentAdapters: [8, 256],
      parallelAdapters: [8, 128],
      maxNumBatchedTokens: [2048, 2048],
      maxNumSeqs: [2048, 2048],
      durationSeconds: [3600, 3600],
      requestLengths: ['sharegpt'],
    });
  });

  it('finds a case like the measured ones inside, an idle adapter included', () => {
    const c = { rates: [0.4, 0.1, 0], ranks: [16, 32], config, durationSeconds: 3600 };
    expect(outsideLatencyEnvelope(envelope, c)).toEqual([]);
    // A workload whose adapters all sit idle sends no rate to judge (and no Infinity to serialise).
    expect(outsideLatencyEnvelope(envelope, { ...c, rates: [0, 0] })).toEqual([]);
  });

  it('names each feature outside, with the value furthest out and the measured range', () => {
    const outside = outsideLatencyEnvelope(envelope, {
      rates: [0.4, 0.0125],
      ranks: [64],
      requestLengths: { kind: 'fixed', input: 1000, output: 100 },
      config: {
        ...config,
        maxLoras: 4,
        maxCpuLoras: 512,
        maxLoraRank: 64,
        maxNumBatchedTokens: 8192,
      },
      durationSeconds: 600,
    });
    expect(outside).toEqual([
      { feature: 'ratePerAdapter', value: 0.0125, trained: [0.025, 1.6] },
      { feature: 'adapterRank', value: 64, trained: [8, 32] },
      { feature: 'maxLoraRank', value: 64, trained: [16, 32] },
      { feature: 'concurrentAdapters', value: 512, trained: [8, 256] },
      { feature: 'parallelAdapters', value: 4, trained: [8, 128] },
      { feature: 'maxNumBatchedTokens', value: 8192, trained: [2048, 2048] },
      { feature: 'durationSeconds', value: 600, trained: [3600, 3600] },
      { feature: 'requestLengths', value: 'fixed', trained: ['sharegpt'] },
    ]);
  });

  it('tells the measured ShareGPT lengths from scaled ones', () => {
    expect(lengthLabel(undefined)).toBe('sharegpt');
    expect(lengthLabel({ kind: 'sharegpt', scale: 1 })).toBe('sharegpt');
    expect(lengthLabel({ kind: 'sharegpt', scale: 2 })).toBe('sharegpt x2');
    const scaled = {
      rates: [0.1],
      ranks: [16],
      requestLengths: { kind: 'sharegpt' as const, scale: 2 },
    };
    expect(outsideLatencyEnvelope(envelope, scaled)).toEqual([
      { feature: 'requestLengths', value: 'sharegpt x2', trained: ['sharegpt'] },
    ]);
  });
});

describe('the case a simulated scenario presents', () => {
  it('holds the groups its adapters take, not those a short pair never reaches', () => {
    const scenario = parseScenario({
      profile: 'h100-64gb/llama-3.1-8b-instruct',
      config: { maxLoras: 2, maxCpuLoras: 2, maxLoraRank: 32 },
      workload: { rates: [0.4, 0.05, 0.0125], ranks: [16, 8, 32] },
    });
    const c = latencyCaseOf(scenario);
    expect(c.rates).toEqual([0.4, 0.05]);
    expect(c.ranks).toEqual([16, 8]);
    expect(c.durationSeconds).toBe(3600);
    expect(c.config?.maxNumBatchedTokens).toBe(2048);
  });
});

describe('the shipped latency models', () => {
  it('hold inside their envelope every real run their intervals were measured on', () => {
    // The runs the real server completed and the twin can start: the ones the fit compares.
    const runs = readServingRuns(MEASUREMENTS_DIR).filter(
      (r) =>
        r.ok &&
        vllmStarts(
          loadProfile(r.scenario.profile),
          r.scenario.config.maxLoras,
          r.scenario.config.maxLoraRank,
        ),
    );
    expect(runs.length).toBeGreaterThan(250);
    for (const run of runs) {
      const model = loadLatencyModel(run.scenario.profile);
      expect(model, run.scenario.profile).toBeDefined();
      expect(outsideLatencyEnvelope(model!.envelope, latencyCaseOf(run.scenario)), run.run).toEqual(
        [],
      );
    }
  });
});
