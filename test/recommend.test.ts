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
function fakeTwin(serves: (c: number, p: number, rateScale: number) => boolean): {
  simulate: PointSimulator;
  /** The pairs simulated at the workload's own rates (headroom probes scale them). */
  calls: Array<[number, number]>;
} {
  const calls: Array<[number, number]> = [];
  const simulate: PointSimulator = async (scenario) => {
    const { maxCpuLoras: c, maxLoras: p } = scenario.config;
    const scale = scenario.workload.rates![0]! / workload.rates[0]!;
    if (scale === 1) calls.push([c, p]);
    const ok = serves(c, p, scale);
    const offered = c * 10 * scale;
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

describe('method auto under an SLO', () => {
  // Pairs up to 200 adapters serve; p99 ITL grows with adapters and slots (c x p / 20 ms). Under
  // p99 ITL <= 200 ms the forest's 32-slot line stops at 96 adapters, while 192 fit on 16 slots.
  const simulate: PointSimulator = async (scenario) => {
    const { maxCpuLoras: c, maxLoras: p } = scenario.config;
    const offered = c * 10;
    const itl = (c * p) / 20;
    return {
      ...stubOutcome({
        throughputTokensPerSecond: c <= 200 ? offered - p * 0.01 : offered * 0.5,
        offeredTokensPerSecond: offered,
        starving: c > 200,
      }),
      itlMs: { mean: itl / 2, p50: itl / 2, p99: itl },
    };
  };

  it('searches the grid as twin does, not the forest line', async () => {
    const slo = { itlP99Ms: 200 };
    const model = constantModel(llama, workload, 64, 32);
    const auto = await recommender(model, simulate).recommend(request({ method: 'auto', slo }));
    const twin = await recommender(model, simulate).recommend(request({ method: 'twin', slo }));
    expect(auto.method).toBe('auto');
    expect(auto.recommendation.concurrentAdapters).toBe(192);
    expect(auto.recommendation.parallelAdapters).toBeLessThanOrEqual(16);
    expect(auto.recommendation).toMatchObject({
      concurrentAdapters: twin.recommendation.concurrentAdapters,
      parallelAdapters: twin.recommendation.parallelAdapters,
    });
    expect(auto.explanation.summary).toMatch(/Under an SLO the forest's answer/);
    expect(auto.envelope).toBe('inside');
  });
});

describe('objectives, headroom and warnings', () => {
  /**
   * Pairs up to 100 adapters complete all their load; up to 200 they complete 95% with a queue
   * that grows (the paper's rule accepts it); beyond, they starve. Rates scaled by m act like
   * m times the adapters.
   */
  const tiered: PointSimulator = async (scenario) => {
    const c = scenario.config.maxCpuLoras;
    const load = c * (scenario.workload.rates![0]! / workload.rates[0]!);
    const offered = load * 10;
    const ratio = load <= 100 ? 1 : load <= 200 ? 0.95 : 0.5;
    return {
      ...stubOutcome({
        throughputTokensPerSecond: offered * ratio,
        offeredTokensPerSecond: offered,
        starving: ratio < 0.9,
      }),
      queueGrowthShare: 1 - ratio,
    };
  };
  const ask = (body: object) =>
    recommender(constantModel(llama, workload, 128, 32), tiered).recommend(request(body));

  it('the paper rule takes the pair whose queue grows, and says so plainly', async () => {
    const r = await ask({
      method: 'twin',
      search: { concurrent: [64, 96, 192, 256], parallel: [32] },
    });
    expect(r.objective).toBe('paper');
    expect(r.recommendation.concurrentAdapters).toBe(192);
    expect(r.recommendation.warnings.join(' ')).toMatch(
      /completes 95\.0% of its offered load.*queue/,
    );
    expect(r.recommendation.binding?.limit).toBe('starvation');
  });

  it('objective "stable" takes the busiest pair that keeps up with a bounded queue', async () => {
    const r = await ask({
      method: 'twin',
      objective: 'stable',
      search: { concurrent: [64, 96, 192, 256], parallel: [32] },
    });
    expect(r.recommendation.concurrentAdapters).toBe(96);
    expect(r.recommendation.warnings.some((w) => /queue/.test(w))).toBe(false);
    expect(r.recommendation.binding?.limit).toBe('stability');
  });

  it('headroom is the rate multiplier at which the pair starves, found by the twin', async () => {
    // 192 adapters starve once the load passes 200 adapters' worth: rates can grow by 200/192.
    const paper = await ask({
      method: 'twin',
      search: { concurrent: [64, 96, 192, 256], parallel: [32] },
    });
    const h = paper.recommendation.headroom;
    expect(h.method).toBe('twin-bisection');
    expect(h.atLeast).toBe(false);
    expect(h.percent!).toBeLessThanOrEqual(100 * (200 / 192 - 1));
    expect(h.percent!).toBeGreaterThanOrEqual(100 * (200 / 192 / 1.05 - 1));
    // 96 adapters still serve at doubled rates, the most tried: "at least 100%".
    const stable = await ask({
      method: 'twin',
      objective: 'stable',
      search: { concurrent: [64, 96, 192, 256], parallel: [32] },
    });
    expect(stable.recommendation.headroom).toMatchObject({ percent: 100, atLeast: true });
  });

  it('method model gives the capacity bound as headroom and says it ran no simulation', async () => {
    const r = await ask({ method: 'model' });
    expect(r.recommendation.headroom.method).toBe('capacity-bound');
    expect(r.recommendation.latency).toBeUndefined();
    expect(r.recommendation.warnings.join(' ')).toMatch(/runs no simulation/);
  });

  it('refuses an SLO or objective "stable" with method model, naming the field', () => {
    for (const body of [{ slo: { ttftP99Ms: 1000 } }, { objective: 'stable' }]) {
      const parsed = recommendRequestSchema.safeParse({
        profile: PROFILE,
        workload,
        method: 'model',
        ...body,
      });
      expect(parsed.success).toBe(false);
      expect(parsed.error!.issues[0]!.path).toEqual(['method']);
    }
  });
});
