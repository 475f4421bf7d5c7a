import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { loadProfile } from '../src/profiles/store.js';
import { loadLatencyModel } from '../src/profiles/latency.js';
import { SimulationPool } from '../src/runtime/pool.js';
import { CachedSimulator, type PointSimulator } from '../src/search/index.js';
import {
  placeCatalog,
  placementRequestSchema,
  zipfCatalog,
  type PlacementResponse,
} from '../src/placement/index.js';
import { gpuNames } from '../src/placement/index.js';
import { reportedBound, type LowerBound } from '../src/placement/bound.js';
import { lengthsFor } from '../src/search/estimate.js';
import { capacityTokensPerSecond } from '../src/twin/index.js';

/**
 * Placement at its edges (issue 23): a bound that is never 0, budgets that keep GPUs, names that
 * stay, a `current` that is checked, and merges across rank groups that the twin backs.
 */
const LLAMA = 'h100-64gb/llama-3.1-8b-instruct';
const QWEN = 'h100-64gb/qwen-2.5-7b-instruct';
const pool = new SimulationPool({ threads: 2 });
const run = (s: Parameters<PointSimulator>[0], _p: unknown, t: number) =>
  pool.run({ scenario: s, starvationThreshold: t });
const shared = new CachedSimulator(run);
afterAll(() => pool.close());

const place = (body: Record<string, unknown>, simulate?: PointSimulator) =>
  placeCatalog(placementRequestSchema.parse(body), {
    loadProfile,
    loadLatencyModel,
    simulate: simulate ?? ((s, p, t) => shared.simulate(s, p, t)),
  });

const offeredTokens = (profile: string, catalog: Array<{ rate: number }>) => {
  const p = loadProfile(profile);
  const lengths = lengthsFor(p, { kind: 'sharegpt' });
  return {
    offered: catalog.reduce((s, a) => s + a.rate, 0) * (lengths.prompt + lengths.output),
    capacity: capacityTokensPerSecond(p, lengths),
  };
};

const weightsOf = (r: PlacementResponse) => {
  const w = new Map<string, number>();
  for (const g of r.gpus) for (const a of g.adapters) w.set(a.id, (w.get(a.id) ?? 0) + a.weight);
  return w;
};

describe('the lower bound', () => {
  it('counts the closed-form capacity where every pair of a rank group is ruled out unsimulated', async () => {
    // Adapters just under half a GPU each: every (adapters, slots) pair of the bound's grid,
    // 8 adapters and up, is over capacity in closed form, so none is simulated. The bound used to
    // count such a group as 0 GPUs.
    const catalog = Array.from({ length: 6 }, (_, i) => ({ id: `warm-${i}`, rate: 5, rank: 16 }));
    const r = await place({ profile: QWEN, catalog });
    const { offered, capacity } = offeredTokens(QWEN, catalog);
    expect(r.lowerBound.loadBound).toBeGreaterThan(0);
    expect(r.lowerBound.bestGpuByRank.every((b) => b.throughputTokensPerSecond > 0)).toBe(true);
    expect(r.lowerBound.capacityBound).toBeCloseTo((0.9 * offered) / capacity, 9);
    expect(r.lowerBound.gpus).toBeGreaterThanOrEqual(Math.ceil((0.9 * offered) / capacity));
    expect(r.gpus.length).toBeGreaterThanOrEqual(r.lowerBound.gpus);
  }, 120_000);

  it('holds gpus >= completed offered load / capacity > 0 over random catalogs, ratio >= 1 when all is placed', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.record({
            rate: fc.double({ min: 0.01, max: 6, noNaN: true }),
            rank: fc.constantFrom(8, 16, 32, 64),
          }),
          { minLength: 1, maxLength: 24 },
        ),
        async (entries) => {
          const catalog = entries.map((e, i) => ({ id: `a${i}`, ...e }));
          const r = await place({ profile: LLAMA, catalog });
          const { offered, capacity } = offeredTokens(LLAMA, catalog);
          expect(offered / capacity).toBeGreaterThan(0);
          expect(r.lowerBound.gpus).toBeGreaterThanOrEqual((0.9 * offered) / capacity - 1e-9);
          expect(r.lowerBound.gpus).toBeGreaterThanOrEqual(1);
          if (r.unplaced.length === 0) expect(r.lowerBound.ratio).toBeGreaterThanOrEqual(1);
        },
      ),
      { numRuns: 4, seed: 23 },
    );
  }, 300_000);

  it('reports a bound no verified placement beats and no twin result takes under capacity', () => {
    const bound: LowerBound = {
      gpus: 5,
      loadBound: 4.2,
      countBound: 0.1,
      capacityBound: 1.3,
      bestGpuByRank: [],
    };
    // The twin's bound said 5, a placement the twin verified serves on 3: the fewest is at most 3.
    expect(reportedBound(bound, 3, true)).toMatchObject({ gpus: 3, ratio: 1 });
    // With adapters unplaced the placement proves nothing about the whole catalog.
    expect(reportedBound(bound, 3, false)).toMatchObject({ gpus: 5, ratio: 0.6 });
    // Never under the closed-form capacity bound, whatever the twin said.
    expect(reportedBound({ ...bound, gpus: 1 }, 4, true).gpus).toBe(2);
  });

  it('leaves nothing behind from a placement that was stopped part-way', async () => {
    const catalog = zipfCatalog({ adapters: 40, meanRate: 0.3, seed: 11 });
    const body = { profile: QWEN, catalog };
    // A placement whose twin runs stop after 15, as a timeout stops them.
    const cache = new CachedSimulator(run);
    let calls = 0;
    const stopping: PointSimulator = (s, p, t) => {
      calls++;
      if (calls > 15) return Promise.reject(new Error('stopped: the placement timed out'));
      return cache.simulate(s, p, t);
    };
    await expect(place(body, stopping)).rejects.toThrow('timed out');
    const retry = await place(body, (s, p, t) => cache.simulate(s, p, t));
    const fresh = await place(body, (s, p, t) => new CachedSimulator(run).simulate(s, p, t));
    expect(retry).toEqual(fresh);
    expect(retry.lowerBound.loadBound).toBeGreaterThan(0);
  }, 180_000);
});

describe('fewest GPUs the twin backs', () => {
  it('puts a 300-adapter catalog of four ranks on the one GPU that serves it', async () => {
    // 24 req/s in all, ranks 8/16/32/64 drawn 4:3:2:1: each rank group packed alone filled a
    // part of its own GPU, and the merges stopped at 2 where one GPU at rank 64 serves all.
    const catalog = zipfCatalog({ adapters: 300, meanRate: 0.08, seed: 1 });
    const r = await place({ profile: LLAMA, catalog });
    expect(r.gpus).toHaveLength(1);
    expect(r.unplaced).toEqual([]);
    expect(r.gpus[0]!.flags).toMatchObject({ maxCpuLoras: 300, maxLoraRank: 64 });
    expect(r.gpus[0]!.completionRatio).toBeGreaterThanOrEqual(0.9);
    expect(r.lowerBound).toMatchObject({ gpus: 1, ratio: 1 });
  }, 180_000);
});

describe('GPU budgets', () => {
  // One adapter hotter than a GPU: its replicas are where a budget of one used to lose the GPU.
  const catalog = [
    ...zipfCatalog({ adapters: 120, meanRate: 0.5, seed: 9 }),
    { id: 'hot', rate: 40, rank: 16 },
  ];
  let unbounded: PlacementResponse;

  it('places the whole catalog without a budget, a hot adapter on several GPUs', async () => {
    unbounded = await place({ profile: QWEN, catalog });
    expect(unbounded.unplaced).toEqual([]);
    expect(unbounded.gpus.length).toBeGreaterThan(2);
    expect(unbounded.routing.length).toBeGreaterThan(0);
  }, 180_000);

  for (const k of [1, 2])
    it(`keeps ${k} GPU(s) serving the most load under gpuBudget ${k}, the rest unplaced`, async () => {
      const r = await place({ profile: QWEN, catalog, gpuBudget: k });
      expect(r.gpus).toHaveLength(k);
      for (const g of r.gpus) expect(g.completionRatio).toBeGreaterThanOrEqual(0.9);
      expect(r.unplaced.length).toBeGreaterThan(0);
      const placed = weightsOf(r);
      for (const [id, w] of placed) expect(w, id).toBeCloseTo(1, 9);
      for (const u of r.unplaced) expect(placed.has(u.id)).toBe(false);
      expect(placed.size + r.unplaced.length).toBe(catalog.length);
      // Kept GPUs carry at least the load the same number of the unbounded answer's lightest do.
      const lightest = unbounded.gpus
        .map((g) => g.offeredTokensPerSecond)
        .sort((a, b) => a - b)
        .slice(0, k)
        .reduce((s, v) => s + v, 0);
      expect(r.totals.offeredTokensPerSecond).toBeGreaterThanOrEqual(lightest);
    }, 180_000);
});

describe('GPU names', () => {
  it('keeps ids, keeps positions without one, and gives new GPUs names that clash with none', () => {
    const current = [
      { id: 'gpu-1', adapters: ['a'] },
      { adapters: ['b'] }, // position 1: gpu-1 is taken by an id
      { adapters: ['c'] }, // keeps gpu-2
    ];
    expect(gpuNames(current, [0, 1, 2, undefined, undefined])).toEqual([
      'gpu-1',
      'gpu-0',
      'gpu-2',
      'gpu-3',
      'gpu-4',
    ]);
    expect(gpuNames(undefined, [undefined, undefined])).toEqual(['gpu-0', 'gpu-1']);
  });

  it('answers a running GPU under its id, and counts moves by it', async () => {
    const catalog = [
      { id: 'a', rate: 0.2, rank: 8 },
      { id: 'b', rate: 0.1, rank: 8 },
      { id: 'c', rate: 0.05, rank: 8 },
    ];
    const r = await place({
      profile: QWEN,
      catalog,
      current: [{ id: 'gpu-7', adapters: ['a', 'b', 'c'] }],
    });
    expect(r.gpus.map((g) => g.id)).toEqual(['gpu-7']);
    expect(r.moves).toMatchObject({ moved: 0, added: 0, removed: 0 });
  }, 60_000);

  it('warns of a split adapter as the answer has it: kept split, not called hot', async () => {
    const catalog = [
      { id: 'a', rate: 0.2, rank: 8 },
      { id: 'b', rate: 0.1, rank: 8 },
    ];
    const r = await place({
      profile: QWEN,
      catalog,
      current: [
        { adapters: [{ id: 'a', weight: 0.5 }, 'b'] },
        { adapters: [{ id: 'a', weight: 0.5 }] },
      ],
    });
    expect(r.warnings.some((w) => w.includes('hotter than half a GPU'))).toBe(false);
    for (const route of r.routing)
      expect(r.warnings.some((w) => w.includes(`"${route.id}" stays split`))).toBe(true);
  }, 60_000);
});

describe('a checked current', () => {
  const base = {
    profile: QWEN,
    catalog: [
      { id: 'a', rate: 0.2, rank: 8 },
      { id: 'b', rate: 0.1, rank: 8 },
      { id: 'c', rate: 0.05, rank: 8 },
    ],
  };
  const issues = (current: unknown) => {
    const r = placementRequestSchema.safeParse({ ...base, current });
    expect(r.success).toBe(false);
    return r.error!.issues.map((i) => ({ path: i.path.join('.'), message: i.message }));
  };

  it('names an adapter listed twice on one GPU', () => {
    expect(issues([{ adapters: ['a', 'a'] }])).toEqual([
      {
        path: 'current.0.adapters.1',
        message: 'adapter "a" is listed twice on this GPU (also current[0].adapters[0])',
      },
      expect.objectContaining({ path: 'current.0.adapters.0' }),
    ]);
  });

  it('names the entries of an adapter whose weights do not sum to 1', () => {
    const found = issues([{ adapters: ['a'] }, { adapters: [{ id: 'a', weight: 1 }] }]);
    expect(found).toEqual([
      {
        path: 'current.0.adapters.0',
        message:
          'adapter "a"\'s weights sum to 2 over current[0].adapters[0], current[1].adapters[0]; a router\'s weights sum to 1',
      },
    ]);
    expect(issues([{ adapters: [{ id: 'a', weight: 0.4 }] }])[0]!.message).toContain('sum to 0.4');
  });

  it('names unknown keys and repeated GPU ids, and takes an answer passed back as is', () => {
    const unknown = issues([{ name: 'gpu-7', gpu: 3, adapters: ['a'] }]);
    expect(unknown).toEqual([expect.objectContaining({ path: 'current.0' })]);
    expect(JSON.stringify(unknown)).toContain('name');
    expect(JSON.stringify(unknown)).toContain('gpu');
    expect(issues([{ adapters: [{ id: 'a', share: 1 }] }])[0]!.path).toBe('current.0.adapters.0');
    expect(
      issues([
        { id: 'x', adapters: ['a'] },
        { id: 'x', adapters: ['b'] },
      ]),
    ).toEqual([{ path: 'current.1.id', message: 'GPU id "x" is also current[0]\'s' }]);
    const echoed = placementRequestSchema.safeParse({
      ...base,
      current: [
        {
          id: 'gpu-0',
          adapters: [{ id: 'a', weight: 1, rate: 0.2 }, 'b', 'c'],
          flags: { maxLoras: 2, maxCpuLoras: 3, maxLoraRank: 8 },
          vllmArgs: ['--enable-lora'],
          offeredTokensPerSecond: 100,
          throughputTokensPerSecond: 99,
          completionRatio: 0.99,
          stable: true,
          ttftP99Ms: 50,
          itlP99Ms: 20,
          headroom: { percentAtLeast: 100, percentBelow: null },
        },
      ],
    });
    expect(echoed.success).toBe(true);
  });
});
