import { describe, expect, it } from 'vitest';
import { loadProfile } from '../src/profiles/store.js';
import type { VerdictRun } from '../src/profiles/verdicts.js';
import { expectedServedThroughput, starveProbability } from '../src/recommend/edge.js';
import { recommendRequestSchema, Recommender } from '../src/recommend/index.js';
import type { PointSimulator } from '../src/search/index.js';
import { stubOutcome } from './helpers.js';
import { constantModel } from './models.js';

const run = (twinRatio: number, realRatio: number): VerdictRun => ({
  workload: 'w',
  twinRatio,
  realRatio,
});

describe('the chance that a pair the twin calls serving really starves', () => {
  // Ten runs the twin called serving: two overstated the real ratio by 0.05, the rest by nothing.
  const runs = [
    ...Array.from({ length: 8 }, () => run(0.97, 0.97)),
    run(0.95, 0.9),
    run(0.93, 0.88),
  ];

  it("is the share of serving runs whose overstatement exceeds the pair's distance above the line", () => {
    expect(starveProbability(runs, 0.92, 0.1)).toBeCloseTo(0.2, 12); // 0.05 > 0.02 for two of ten
    expect(starveProbability(runs, 0.96, 0.1)).toBe(0); // 0.05 < 0.06
    expect(starveProbability(runs, 0.89, 0.1)).toBe(1); // the twin itself says it starves
  });

  it('ignores runs the twin called starving, and is 0 without evidence', () => {
    expect(starveProbability([...runs, run(0.5, 0.2)], 0.92, 0.1)).toBeCloseTo(0.2, 12);
    expect(starveProbability([], 0.9, 0.1)).toBe(0);
  });

  it('prices a pair by the throughput it is expected to serve', () => {
    const p = { throughputTokensPerSecond: 920, offeredTokensPerSecond: 1000 };
    expect(expectedServedThroughput(runs, p, 0.1)).toBeCloseTo(0.8 * 920, 9);
  });
});

describe('the recommender at the edge', () => {
  const llama = loadProfile('h100-64gb/llama-3.1-8b-instruct');
  const workload = { rates: [0.1, 0.05, 0.025], ranks: [16] };
  // The twin serves up to 256 adapters; at 256 only 91% of the load, at 224 the whole of it.
  const twin: PointSimulator = async (scenario) => {
    const c = scenario.config.maxCpuLoras;
    const offered = c * 10;
    const ratio = c <= 224 ? 1 : c <= 256 ? 0.91 : 0.5;
    return stubOutcome({
      throughputTokensPerSecond: offered * ratio,
      offeredTokensPerSecond: offered,
      starving: ratio < 0.9,
    });
  };
  const recommend = (runs: VerdictRun[]) =>
    new Recommender({
      loadProfile,
      loadModel: () => constantModel(llama, workload, 256, 32),
      simulate: twin,
      loadVerdictRuns: () => runs,
    }).recommend(recommendRequestSchema.parse({ profile: llama.id, workload, method: 'twin' }));

  it('steps back when the twin has overstated pairs this close to the line', async () => {
    // Half the measured serving runs were overstated by 0.03 > 0.01: 256 adapters are worth
    // 0.5 x 2,330 tok/s, less than 224 adapters' 2,240.
    const r = await recommend([run(0.95, 0.92), run(0.97, 0.97)]);
    expect(r.recommendation.concurrentAdapters).toBe(224);
    expect(r.explanation.summary).toMatch(/steps back to 224/);
  });

  it('keeps the pair when the twin has never been that wrong', async () => {
    const r = await recommend([run(0.95, 0.95), run(0.97, 0.98)]);
    expect(r.recommendation.concurrentAdapters).toBe(256);
  });

  it("steps the forest's answer down in closed form, pricing fewer adapters at the same tokens", async () => {
    // The forest says 256 adapters complete 91% of their load; half the measured serving runs
    // were overstated by more than 0.01. 224 adapters offer 87.5% of 256's load: all served.
    const r = await new Recommender({
      loadProfile,
      loadModel: () => constantModel(llama, workload, 256, 32, 0.91),
      simulate: twin,
      loadVerdictRuns: () => [run(0.95, 0.92), run(0.97, 0.97)],
    }).recommend(recommendRequestSchema.parse({ profile: llama.id, workload, method: 'model' }));
    expect(r.recommendation.concurrentAdapters).toBe(224);
    expect(r.recommendation.throughputTokensPerSecond).toBeCloseTo(
      r.recommendation.offeredTokensPerSecond,
      6,
    );
    expect(r.explanation.summary).toMatch(/256 adapters would serve 91\.0% of their load/);
  });
});
