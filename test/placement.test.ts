import { afterAll, describe, expect, it } from 'vitest';
import { loadProfile } from '../src/profiles/store.js';
import { loadLatencyModel } from '../src/profiles/latency.js';
import { SimulationPool } from '../src/runtime/pool.js';
import { CachedSimulator } from '../src/search/index.js';
import {
  parseTrace,
  placeCatalog,
  placementRequestSchema,
  zipfCatalog,
  TraceError,
  type PlacementResponse,
} from '../src/placement/index.js';
import { publishedGreedy, zigzag } from '../src/placement/baselines.js';
import { lengthsFor } from '../src/search/estimate.js';
import { spreadLargestFirst } from '../src/placement/gpu.js';
import { vllmStarts } from '../src/twin/index.js';

const LLAMA = 'h100-64gb/llama-3.1-8b-instruct';
const QWEN = 'h100-64gb/qwen-2.5-7b-instruct';
const pool = new SimulationPool({ threads: 2 });
const cache = new CachedSimulator((s, _p, t) => pool.run({ scenario: s, starvationThreshold: t }));
const deps = {
  loadProfile,
  loadLatencyModel,
  simulate: cache.simulate.bind(cache) as CachedSimulator['simulate'],
};
afterAll(() => pool.close());

const place = (body: Record<string, unknown>) =>
  placeCatalog(placementRequestSchema.parse(body), {
    ...deps,
    simulate: (s, p, t) => cache.simulate(s, p, t),
  });

/** Each adapter placed once whole, or split with weights summing to 1, or unplaced: never lost. */
function expectAccounted(response: PlacementResponse, ids: string[]) {
  const weights = new Map<string, number>();
  for (const g of response.gpus) {
    const seen = new Set<string>();
    for (const a of g.adapters) {
      expect(seen.has(a.id), `${a.id} twice on ${g.id}`).toBe(false);
      seen.add(a.id);
      weights.set(a.id, (weights.get(a.id) ?? 0) + a.weight);
    }
  }
  const unplaced = new Set(response.unplaced.map((u) => u.id));
  for (const id of ids) {
    if (unplaced.has(id)) {
      expect(weights.has(id), `${id} both placed and unplaced`).toBe(false);
      expect(response.unplaced.find((u) => u.id === id)!.reason.length).toBeGreaterThan(10);
    } else expect(weights.get(id), id).toBeCloseTo(1, 9);
  }
  expect(weights.size + unplaced.size).toBe(ids.length);
}

function expectFeasibleAndServing(response: PlacementResponse) {
  const profile = loadProfile(response.profile);
  for (const g of response.gpus) {
    expect(g.flags.maxCpuLoras).toBe(g.adapters.length);
    expect(g.flags.maxLoras).toBeLessThanOrEqual(g.flags.maxCpuLoras);
    expect(vllmStarts(profile, g.flags.maxLoras, g.flags.maxLoraRank)).toBe(true);
    expect(profile.allowedLoraRanks).toContain(g.flags.maxLoraRank);
    // The twin's one-hour verdict: no GPU in an answer starves.
    expect(g.completionRatio).toBeGreaterThanOrEqual(0.9);
    const rate = g.adapters.reduce((s, a) => s + a.rate, 0);
    expect(rate).toBeGreaterThan(0);
  }
}

describe('placement of a heavy-tailed catalog', () => {
  const catalog = zipfCatalog({ adapters: 120, meanRate: 0.15, seed: 5 });
  let answer: PlacementResponse;
  it('places every adapter exactly once on GPUs that start and serve in the twin', async () => {
    answer = await place({ profile: LLAMA, catalog });
    expectAccounted(
      answer,
      catalog.map((a) => a.id),
    );
    expectFeasibleAndServing(answer);
    expect(answer.unplaced).toEqual([]);
    expect(answer.totals.gpus).toBe(answer.gpus.length);
    // The bound is a bound: no answer beats it.
    expect(answer.gpus.length).toBeGreaterThanOrEqual(answer.lowerBound.gpus);
    expect(answer.lowerBound.ratio).toBeCloseTo(answer.gpus.length / answer.lowerBound.gpus, 9);
  }, 120_000);

  it('keeps most adapters in place when 20% of the rates shift by up to 50%', async () => {
    const shifted = catalog.map((a, i) =>
      i % 5 === 0 ? { ...a, rate: a.rate * (i % 10 === 0 ? 1.5 : 0.5) } : a,
    );
    const current = answer.gpus.map((g) => ({ adapters: g.adapters }));
    const again = await place({ profile: LLAMA, catalog: shifted, current });
    expectAccounted(
      again,
      shifted.map((a) => a.id),
    );
    expectFeasibleAndServing(again);
    expect(again.moves).toBeDefined();
    expect(again.moves!.moved).toBeLessThanOrEqual(Math.ceil(0.1 * catalog.length));
    expect(again.gpus.length).toBeLessThanOrEqual(again.moves!.freshGpus + 1);
    // A GPU that was running keeps its name.
    expect(again.gpus.filter((g) => g.id.startsWith('gpu-')).length).toBe(again.gpus.length);
  }, 180_000);
});

describe('hot adapters and budgets', () => {
  it('answers a catalog of one adapter hotter than a GPU with replicas and router weights', async () => {
    const answer = await place({
      profile: QWEN,
      catalog: [{ id: 'hot', rate: 60, rank: 16 }],
    });
    expect(answer.gpus.length).toBeGreaterThan(1);
    expectAccounted(answer, ['hot']);
    expectFeasibleAndServing(answer);
    expect(answer.routing).toHaveLength(1);
    const weights = answer.routing[0]!.replicas.map((r) => r.weight);
    expect(weights.reduce((s, w) => s + w, 0)).toBeCloseTo(1, 9);
    expect(answer.warnings.some((w) => w.includes('"hot"') && w.includes('routing'))).toBe(true);
  }, 120_000);

  it('honours a GPU budget and says which adapters did not fit and why', async () => {
    const catalog = zipfCatalog({ adapters: 60, meanRate: 1, seed: 9 });
    const answer = await place({ profile: QWEN, catalog, gpuBudget: 1 });
    expect(answer.gpus.length).toBe(1);
    expect(answer.unplaced.length).toBeGreaterThan(0);
    expect(answer.unplaced[0]!.reason).toContain('GPU budget of 1');
    expectAccounted(
      answer,
      catalog.map((a) => a.id),
    );
    expectFeasibleAndServing(answer);
  }, 120_000);
});

describe('objectives', () => {
  it('under objective stable, every GPU completes 99% with a queue that does not grow', async () => {
    const catalog = zipfCatalog({ adapters: 60, meanRate: 0.25, seed: 3 });
    const paper = await place({ profile: QWEN, catalog });
    const stable = await place({ profile: QWEN, catalog, objective: 'stable' });
    for (const g of stable.gpus) {
      expect(g.stable).toBe(true);
      expect(g.completionRatio).toBeGreaterThanOrEqual(0.99);
    }
    expect(stable.gpus.length).toBeGreaterThanOrEqual(paper.gpus.length);
    expectAccounted(
      stable,
      catalog.map((a) => a.id),
    );
  }, 120_000);

  it('meets a TTFT SLO with more slots, not one GPU per light adapter', async () => {
    // 1 req/s in all: one GPU serves it, but the estimate's 2 slots keep requests waiting for
    // their adapter to a p99 TTFT of 38 s. This catalog used to take 20 GPUs under the SLO.
    const catalog = Array.from({ length: 20 }, (_, i) => ({ id: `a${i}`, rate: 0.05, rank: 16 }));
    const r = await place({ profile: LLAMA, catalog, slo: { ttftP99Ms: 5000 } });
    expect(r.gpus).toHaveLength(1);
    const gpu = r.gpus[0]!;
    expect(gpu.flags.maxLoras).toBeGreaterThan(2);
    expect(gpu.ttftP99Ms).toBeLessThan(5000);
    expectFeasibleAndServing(r);
    expectAccounted(
      r,
      catalog.map((a) => a.id),
    );
  }, 120_000);

  it('says when its SLO verdicts rest on latency bounds never measured for such adapters', async () => {
    // Rank 64: the real runs the intervals come from used ranks 8-32.
    const catalog = Array.from({ length: 20 }, (_, i) => ({ id: `a${i}`, rate: 0.05, rank: 64 }));
    const r = await place({ profile: LLAMA, catalog, slo: { ttftP99Ms: 30_000 } });
    const warning = r.warnings.find((w) => w.includes('coverage was not measured'));
    expect(warning).toContain(`${r.gpus.length} GPUs were judged against the SLO`);
    expect(warning).toContain('adapterRank');
    const unjudged = await place({ profile: LLAMA, catalog });
    expect(unjudged.warnings.some((w) => w.includes('coverage was not measured'))).toBe(false);
  }, 120_000);
});

describe('placement inputs', () => {
  it('rejects non-finite or negative rates and duplicate ids, naming the entries', () => {
    const bad = placementRequestSchema.safeParse({
      profile: LLAMA,
      catalog: [
        { id: 'b', rate: -1, rank: 8 },
        { id: 'c', rate: Infinity, rank: 8 },
        { id: 'd', rate: NaN, rank: 8 },
      ],
    });
    expect(bad.error!.issues.map((i) => i.path.join('.'))).toEqual([
      'catalog.0.rate',
      'catalog.1.rate',
      'catalog.2.rate',
    ]);
    const dup = placementRequestSchema.safeParse({
      profile: LLAMA,
      catalog: [
        { id: 'a', rate: 1, rank: 8 },
        { id: 'z', rate: 1, rank: 8 },
        { id: 'a', rate: 1, rank: 8 },
      ],
    });
    expect(dup.error!.issues).toMatchObject([
      { path: ['catalog', 2, 'id'], message: 'duplicate adapter id "a" (first at catalog[0])' },
    ]);
  });

  it('rejects ranks above what the profile allows, naming each entry', async () => {
    await expect(
      place({
        profile: LLAMA,
        catalog: [
          { id: 'ok', rate: 1, rank: 8 },
          { id: 'huge', rate: 1, rank: 1024 },
        ],
      }),
    ).rejects.toMatchObject({
      issues: [{ field: 'body.catalog[1].rank', message: expect.stringContaining('"huge"') }],
    });
  });

  it('reads a request log into rates and lengths, and names a bad line', () => {
    const trace = parseTrace(
      'timestamp,adapter_id,prompt_tokens,output_tokens\n0,a,100,50\n5,b,200,20\n10,a,300,30\n',
      () => 16,
    );
    expect(trace.spanSeconds).toBe(10);
    expect(trace.catalog).toEqual([
      { id: 'a', rate: 0.2, rank: 16 },
      { id: 'b', rate: 0.1, rank: 16 },
    ]);
    expect(trace.requestLengths).toEqual({
      kind: 'empirical',
      samples: [
        [100, 50],
        [200, 20],
        [300, 30],
      ],
    });
    expect(() => parseTrace('0,a\n1,b\nyesterday,c\n', () => 8)).toThrow(TraceError);
    expect(() => parseTrace('0,a\n1,b\nyesterday,c\n', () => 8)).toThrow(/^line 3: /);
    expect(() => parseTrace('0,a,12\n', () => 8)).toThrow(/line 1: give both/);
  });
});

describe('the published greedy, reimplemented', () => {
  it('orders a rank group zigzag: largest, smallest, next largest', () => {
    expect(zigzag([1, 5, 3, 4, 2], (v) => v)).toEqual([5, 1, 4, 2, 3]);
  });

  it('fails, as the published code raises, on an adapter hotter than a GPU', () => {
    const profile = loadProfile(LLAMA);
    const ctx = {
      profile,
      lengths: lengthsFor(profile, { kind: 'sharegpt' }),
      requestLengths: { kind: 'sharegpt' as const },
      starvationThreshold: 0.1,
      objective: 'paper' as const,
      simulate: deps.simulate,
    };
    const hot = [
      { id: 'hot', rate: 200, rank: 8 },
      ...zipfCatalog({ adapters: 20, meanRate: 0.1 }),
    ];
    expect(publishedGreedy(ctx, hot).failure).toMatch(/not enough servers/);
    const cold = zipfCatalog({ adapters: 40, meanRate: 0.1 });
    const placed = publishedGreedy(ctx, cold);
    expect(placed.gpus?.flatMap((g) => g.pieces.map((p) => p.id)).sort()).toEqual(
      cold.map((a) => a.id).sort(),
    );
  });

  it('spreads largest-first: loads balanced within the largest piece', () => {
    const pieces = zipfCatalog({ adapters: 200, meanRate: 0.1 }).map((a) => ({
      ...a,
      weight: 1,
    }));
    const bins = spreadLargestFirst(pieces, 4);
    const loads = bins.map((b) => b.reduce((s, p) => s + p.rate, 0));
    const largest = Math.max(...pieces.map((p) => p.rate));
    expect(Math.max(...loads) - Math.min(...loads)).toBeLessThanOrEqual(largest + 1e-9);
    expect(bins.flat()).toHaveLength(200);
  });
});
