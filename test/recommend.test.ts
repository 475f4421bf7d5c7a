import { describe, expect, it } from 'vitest';
import type { ModelFile } from '../src/model/model.js';
import { loadProfile } from '../src/profiles/store.js';
import { recommendRequestSchema, Recommender } from '../src/recommend/index.js';
import type { PointSimulator } from '../src/search/index.js';
import { stubOutcome } from './helpers.js';
import { constantModel } from './models.js';

const PROFILE = 'h100-64gb/llama-3.1-8b-instruct';
const llama = loadProfile(PROFILE);
const workload = { rates: [0.1, 0.05, 0.025], ranks: [16] };

/** A stand-in twin: a pair serves when `serves(c, p)`; throughput grows with adapters. */
function fakeTwin(serves: (c: number, p: number) => boolean): {
  simulate: PointSimulator;
  calls: Array<[number, number]>;
} {
  const calls: Array<[number, number]> = [];
  const simulate: PointSimulator = async (scenario) => {
    const { maxCpuLoras: c, maxLoras: p } = scenario.config;
    calls.push([c, p]);
    const ok = serves(c, p);
    const offered = c * 10;
    return stubOutcome({
      throughputTokensPerSecond: ok ? offered - p * 0.01 : offered * 0.5,
      offeredTokensPerSecond: offered,
      starving: !ok,
    });
  };
  return { simulate, calls };
}

const recommender = (model: ModelFile, simulate: PointSimulator) =>
  new Recommender({ loadProfile, loadModel: () => model, simulate });
const request = (body: object) =>
  recommendRequestSchema.parse({ profile: PROFILE, workload, ...body });

describe('method model', () => {
  it('snaps to the candidate grid, keeps parallel <= concurrent and prices the snapped pair', async () => {
    const twin = fakeTwin(() => true);
    const r = await recommender(constantModel(llama, workload, 300, 90), twin.simulate).recommend(
      request({
        method: 'model',
        search: { concurrent: [64, 128, 256, 384], parallel: [32, 64, 128] },
      }),
    );
    expect(r.recommendation.concurrentAdapters).toBe(256); // 300 is nearer 256 than 384 in ratio
    expect(r.recommendation.parallelAdapters).toBe(64); // 90 is nearer 64 than 128 in ratio
    expect(r.recommendation.throughputTokensPerSecond).toBeCloseTo(
      0.95 * r.recommendation.offeredTokensPerSecond,
      6,
    );
    expect(r.vllmArgs).toContain('--max-cpu-loras=256');
    expect(twin.calls).toHaveLength(0); // the forest alone: no simulation
  });

  it('never predicts more throughput than is offered', async () => {
    const r = await recommender(
      constantModel(llama, workload, 64, 32, 1.2),
      fakeTwin(() => true).simulate,
    ).recommend(request({ method: 'model' }));
    expect(r.recommendation.throughputTokensPerSecond).toBe(
      r.recommendation.offeredTokensPerSecond,
    );
  });
});

describe('method auto', () => {
  it('descends from a forest answer the twin says starves to the largest pair that serves', async () => {
    const twin = fakeTwin((c) => c <= 100);
    const r = await recommender(constantModel(llama, workload, 300, 64), twin.simulate).recommend(
      request({ method: 'auto' }),
    );
    expect(r.recommendation.starving).toBe(false);
    expect(r.recommendation.concurrentAdapters).toBe(96); // the largest default value <= 100
    expect(twin.calls.length).toBeLessThan(12); // far fewer than a full search
  });

  it('climbs from a forest answer that is too cautious', async () => {
    const twin = fakeTwin((c) => c <= 200);
    const r = await recommender(constantModel(llama, workload, 64, 32), twin.simulate).recommend(
      request({ method: 'auto' }),
    );
    expect(r.recommendation.concurrentAdapters).toBe(192);
    expect(r.recommendation.starving).toBe(false);
  });

  it('falls back to the full twin search when no pair on the forest line serves', async () => {
    const twin = fakeTwin((c, p) => p >= 128 && c <= 320);
    const r = await recommender(constantModel(llama, workload, 128, 16), twin.simulate).recommend(
      request({ method: 'auto' }),
    );
    expect(r.method).toBe('auto');
    // Fewer slots win at equal adapters: the full search's answer, not the forest's line.
    expect(r.recommendation).toMatchObject({
      concurrentAdapters: 320,
      parallelAdapters: 128,
      starving: false,
    });
    expect(r.evaluated.some((e) => e.parallelAdapters === 16 && e.starving)).toBe(true);
    expect(r.explanation.summary).toMatch(/No pair on the forest's line serves/);
  });
});
