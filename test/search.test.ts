import { describe, expect, it } from 'vitest';
import { loadProfile } from '../src/profiles/store.js';
import {
  better,
  CachedSimulator,
  searchOptimum,
  scenarioFor,
  type EvaluatedPoint,
  type PointSimulator,
} from '../src/search/index.js';
import { simulate } from '../src/twin/index.js';

const llama = loadProfile('h100-64gb/llama-3.1-8b-instruct');
const inProcess: PointSimulator = async (scenario, profile, threshold) =>
  simulate(scenario, profile, { starvationThreshold: threshold });
const grid = { concurrent: [8, 16, 32, 64, 128], parallel: [8, 16, 32, 64] };
const durationSeconds = 300;

/** Every pair simulated: the best feasible, non-starving one under the search's own ordering. */
async function bruteForce(workload: { rates: number[]; ranks: number[] }, maxLoraRank: number) {
  let best: EvaluatedPoint | null = null;
  for (const p of grid.parallel) {
    for (const c of grid.concurrent.filter((c) => c >= p)) {
      const r = await inProcess(
        scenarioFor(llama, workload, c, p, maxLoraRank, durationSeconds, 1),
        llama,
        0.1,
      );
      if (!r.feasible || r.starving) continue;
      const point: EvaluatedPoint = {
        concurrentAdapters: c,
        parallelAdapters: p,
        feasible: true,
        simulated: true,
        throughputTokensPerSecond: r.throughputTokensPerSecond,
        offeredTokensPerSecond: r.offeredTokensPerSecond,
        starving: false,
        sloViolated: false,
        stable: true,
        ttftP99Ms: r.ttftMs.p99,
        itlP99Ms: r.itlMs.p99,
      };
      if (better(point, best)) best = point;
    }
  }
  return best ? { c: best.concurrentAdapters, p: best.parallelAdapters } : null;
}

describe('optimum search', () => {
  it.each([
    ['light traffic', { rates: [0.1, 0.05, 0.025], ranks: [8, 16] }],
    ['heavy traffic', { rates: [1.6, 0.8, 0.4], ranks: [16] }],
    ['rank 32 adapters', { rates: [0.4, 0.1], ranks: [32] }],
  ])('finds the brute-force optimum on a small grid (%s)', async (_, workload) => {
    const result = await searchOptimum(llama, { workload, ...grid, durationSeconds }, inProcess);
    const expected = await bruteForce(workload, result.maxLoraRank);
    expect(expected).not.toBeNull();
    expect(result.best).not.toBeNull();
    expect({ c: result.best!.concurrentAdapters, p: result.best!.parallelAdapters }).toEqual({
      c: expected!.c,
      p: expected!.p,
    });
    expect(result.best!.starving).toBe(false);
    expect(result.best!.feasible).toBe(true);
    // Fewer simulations than pairs: the search uses the problem's structure.
    const pairs = grid.parallel.reduce(
      (n, p) => n + grid.concurrent.filter((c) => c >= p).length,
      0,
    );
    expect(result.simulations).toBeLessThan(pairs);

    // Started from any hint (as the twin method starts from the forest's answer), the same answer.
    for (const startNear of [8, 40, 128, 1000]) {
      const hinted = await searchOptimum(
        llama,
        { workload, ...grid, durationSeconds, startNear },
        inProcess,
      );
      expect([hinted.best!.concurrentAdapters, hinted.best!.parallelAdapters]).toEqual([
        expected!.c,
        expected!.p,
      ]);
    }
  });

  it('needs fewer simulations when started near the optimum', async () => {
    // A stand-in twin whose lines serve up to 96 adapters, on a fine grid.
    const fine = {
      concurrent: [8, 16, 24, 32, 48, 64, 96, 128, 160, 192, 256, 320, 384, 448, 512],
      parallel: [8, 16, 32],
    };
    const counting: PointSimulator = async (scenario) => ({
      ...(await inProcess(scenario, llama, 0.1)),
      starving: scenario.config.maxCpuLoras > 96,
    });
    const cold = await searchOptimum(
      llama,
      { workload: { rates: [0.01], ranks: [8] }, ...fine, durationSeconds: 60 },
      counting,
    );
    const warm = await searchOptimum(
      llama,
      { workload: { rates: [0.01], ranks: [8] }, ...fine, durationSeconds: 60, startNear: 100 },
      counting,
    );
    expect(warm.best!.concurrentAdapters).toBe(96);
    expect(cold.best!.concurrentAdapters).toBe(96);
    expect(warm.simulations).toBeLessThan(cold.simulations);
  });

  it('picks max_lora_rank as the smallest allowed rank that fits every adapter', async () => {
    const result = await searchOptimum(
      llama,
      { workload: { rates: [0.1], ranks: [8, 24] }, ...grid, durationSeconds },
      inProcess,
    );
    expect(result.maxLoraRank).toBe(32);
  });

  it('does not simulate parallel settings whose KV cache cannot start vLLM', async () => {
    // Llama with rank-32 slots: 192 slots leave less KV than one 131072-token sequence.
    const result = await searchOptimum(
      llama,
      {
        workload: { rates: [0.05], ranks: [32] },
        concurrent: [16, 192, 256],
        parallel: [16, 192],
        durationSeconds,
      },
      inProcess,
    );
    const infeasible = result.evaluated.filter((p) => p.parallelAdapters === 192);
    expect(infeasible.length).toBeGreaterThan(0);
    expect(infeasible.every((p) => !p.feasible && !p.simulated)).toBe(true);
    expect(result.best?.parallelAdapters).toBe(16);
  });

  it('says clearly when no configuration serves the workload', async () => {
    const result = await searchOptimum(
      llama,
      { workload: { rates: [50], ranks: [16] }, ...grid, durationSeconds },
      inProcess,
    );
    expect(result.best).toBeNull();
    expect(result.reason).toMatch(/every feasible configuration starves/);
    expect(
      result.evaluated.filter((p: EvaluatedPoint) => p.simulated).every((p) => p.starving),
    ).toBe(true);
  });

  it('excludes pairs that break the SLO', async () => {
    const workload = { rates: [0.4, 0.2], ranks: [16] };
    const free = await searchOptimum(llama, { workload, ...grid, durationSeconds }, inProcess);
    const strictItl = free.best!.itlP99Ms * 0.9;
    const bounded = await searchOptimum(
      llama,
      { workload, ...grid, durationSeconds, slo: { itlP99Ms: strictItl } },
      inProcess,
    );
    if (bounded.best) expect(bounded.best.itlP99Ms).toBeLessThanOrEqual(strictItl);
    else expect(bounded.reason).toMatch(/SLO/);
    expect(bounded.evaluated.some((p) => p.sloViolated)).toBe(true);
  });

  it('gives the same answer cached and uncached, and reuses cached simulations', async () => {
    const cache = new CachedSimulator(inProcess);
    const cached: PointSimulator = (s, p, t) => cache.simulate(s, p, t);
    const workload = { rates: [0.2, 0.05], ranks: [8] };
    const plain = await searchOptimum(llama, { workload, ...grid, durationSeconds }, inProcess);
    const first = await searchOptimum(llama, { workload, ...grid, durationSeconds }, cached);
    const second = await searchOptimum(llama, { workload, ...grid, durationSeconds }, cached);
    expect(first).toEqual(plain);
    expect(second).toEqual(plain);
    expect(cache.stats.misses).toBe(plain.simulations);
    expect(cache.stats.hits).toBe(plain.simulations);
  });
});
