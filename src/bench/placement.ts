import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { TopLevelSpec } from 'vega-lite';
import { renderSvg } from '../charts/svg.js';
import { loadLatencyModel } from '../profiles/latency.js';
import { PACKAGE_ROOT, loadProfile } from '../profiles/store.js';
import { SimulationPool } from '../runtime/pool.js';
import { CachedSimulator } from '../search/index.js';
import {
  BASELINES,
  firstFitDecreasing,
  loraServe,
  publishedGreedy,
  roundRobin,
  type BaselineName,
  type BaselinePlacement,
} from '../placement/baselines.js';
import { benchPlacementContext } from './context.js';
import {
  VERIFY_SECONDS,
  judgeGpu,
  requiredCompletion,
  type CatalogAdapter,
  type PlacementContext,
} from '../placement/gpu.js';
import { PLACEMENT_CONCURRENCY, mapLimited, piecesOf } from '../placement/loraplan.js';
import { placeCatalog, placementRequestSchema, zipfCatalog } from '../placement/index.js';
import { vllmStarts } from '../twin/index.js';
import { seededStream } from '../twin/random.js';

/**
 * npm run bench:placement: loraplan against the four baselines on heavy-tailed catalogs of 200 to
 * 10,000 adapters, both profiles; every GPU of every answer judged by a one-hour twin run. Writes
 * docs/placement/bench.md (the table), bench.json and gpus.svg (GPUs against catalog size).
 * `--sizes 200,1000` and `--profiles` narrow it.
 */
const PROFILES = ['h100-64gb/llama-3.1-8b-instruct', 'h100-64gb/qwen-2.5-7b-instruct'];
const SIZES = [200, 1000, 5000, 10000];
/** Mean requests/s per adapter: 200 adapters fill about two GPUs, 10,000 about a hundred. */
const MEAN_RATE = 0.2;
/** Catalogs re-placed after a traffic shift (each costs about two more placements). */
const REPLACE_SIZES = [1000, 5000];

interface Row {
  profile: string;
  adapters: number;
  method: 'loraplan' | BaselineName;
  gpus: number | null;
  lowerBound: number;
  /**
   * The simple bound: offered load over the best single-GPU throughput, rounded up,
   * without the share of its load a serving GPU may leave behind (lowerBound counts that share).
   */
  simpleBound: number;
  starvingGpus: number | null;
  throughputTokensPerSecond: number | null;
  offeredTokensPerSecond: number;
  seconds: number;
  verifySeconds: number | null;
  note: string;
}

async function judgeBaseline(
  ctx: PlacementContext,
  placement: BaselinePlacement,
): Promise<{ starving: number; throughput: number }> {
  const gpus = placement.gpus ?? [];
  const verdicts = await mapLimited(gpus, PLACEMENT_CONCURRENCY, async (g) => {
    // A GPU vLLM cannot start serves nothing: it counts as starving.
    if (!vllmStarts(ctx.profile, g.flags.maxLoras, g.flags.maxLoraRank))
      return { serves: false, throughput: 0 };
    const v = await judgeGpu(ctx, g.pieces, g.flags, VERIFY_SECONDS);
    return { serves: v.serves, throughput: v.point.throughputTokensPerSecond };
  });
  return {
    starving: verdicts.filter((v) => !v.serves).length,
    throughput: verdicts.reduce((s, v) => s + v.throughput, 0),
  };
}

/**
 * The catalog with each adapter hotter than half a GPU split into its replicas (as loraplan
 * splits it), each replica an entry of its own: what a baseline without replication needs.
 */
function replicaCatalog(ctx: PlacementContext, catalog: readonly CatalogAdapter[]) {
  const count = new Map<string, number>();
  return piecesOf(ctx, catalog).map((p) => {
    const k = count.get(p.id) ?? 0;
    count.set(p.id, k + 1);
    return { id: p.weight < 1 ? `${p.id}#${k}` : p.id, rate: p.rate, rank: p.rank };
  });
}

/** 20% of the adapters (every fifth, by seeded draw) change rate by a factor in [0.5, 1.5]. */
function shifted(catalog: readonly CatalogAdapter[], seed: number): CatalogAdapter[] {
  const source = seededStream(seed, 11);
  return catalog.map((a) =>
    source.next() < 0.2 ? { ...a, rate: a.rate * (0.5 + source.next()) } : a,
  );
}

interface MoveRow {
  profile: string;
  adapters: number;
  changed: number;
  moved: number;
  gpus: number;
  freshGpus: number;
  seconds: number;
}

async function main() {
  const { values } = parseArgs({
    options: {
      sizes: { type: 'string' },
      profiles: { type: 'string' },
      'replace-sizes': { type: 'string' },
    },
  });
  const sizes = values.sizes?.split(',').map(Number) ?? SIZES;
  const profiles = values.profiles?.split(',') ?? PROFILES;
  const replaceSizes = values['replace-sizes']?.split(',').map(Number) ?? REPLACE_SIZES;
  const moves: MoveRow[] = [];
  const pool = new SimulationPool({});
  const rows: Row[] = [];
  const now = () => performance.now();
  try {
    for (const profileId of profiles) {
      const profile = loadProfile(profileId);
      for (const adapters of sizes) {
        // A fresh cache per catalog: loraplan's time includes every simulation it needs.
        const cache = new CachedSimulator((s, _p, t) =>
          pool.run({ scenario: s, starvationThreshold: t }),
        );
        const simulate = cache.simulate.bind(cache);
        const catalog = zipfCatalog({ adapters, meanRate: MEAN_RATE, seed: adapters });
        const request = placementRequestSchema.parse({ profile: profileId, catalog });
        const t0 = now();
        const answer = await placeCatalog(request, {
          loadProfile,
          loadLatencyModel,
          simulate: (s, p, t) => simulate(s, p, t),
        });
        const seconds = (now() - t0) / 1000;
        const offered = catalog.reduce((s, a) => s + a.rate, 0);
        const ctx = benchPlacementContext(profile, (s, p, t) => simulate(s, p, t));
        const tokens = ctx.lengths.prompt + ctx.lengths.output;
        const lowerBound = answer.lowerBound.gpus;
        // lowerBound.loadBound counts the share a serving GPU must complete; the simple bound all.
        const simpleBound = Math.max(
          1,
          Math.ceil(answer.lowerBound.loadBound / requiredCompletion(ctx) - 1e-9),
        );
        rows.push({
          profile: profileId,
          adapters,
          method: 'loraplan',
          gpus: answer.totals.gpus,
          lowerBound,
          simpleBound,
          starvingGpus: 0,
          throughputTokensPerSecond: answer.totals.throughputTokensPerSecond,
          offeredTokensPerSecond: offered * tokens,
          seconds,
          verifySeconds: null,
          note:
            answer.unplaced.length > 0
              ? `${answer.unplaced.length} unplaced`
              : `${answer.totals.replicatedAdapters} replicated`,
        });
        const operatingPoints = new Map(
          answer.lowerBound.bestGpuByRank.map((b) => [b.maxLoraRank, b.throughputTokensPerSecond]),
        );
        const highest = Math.max(...operatingPoints.keys());
        const replicas = replicaCatalog(ctx, catalog);
        for (const method of BASELINES) {
          const t1 = now();
          const run = (c: CatalogAdapter[]) =>
            method === 'published-greedy'
              ? publishedGreedy(ctx, c)
              : method === 'loraserve'
                ? loraServe(ctx, c, operatingPoints)
                : method === 'ffd-rate'
                  ? firstFitDecreasing(ctx, c, operatingPoints.get(highest)!)
                  : roundRobin(ctx, c, lowerBound);
          let placement = run(catalog);
          let note = '';
          if (placement.failure) {
            // Without replicas it cannot place the catalog at all: give it loraplan's replicas.
            note = `raw catalog: ${placement.failure}; shown on loraplan's replicas`;
            placement = run(replicas);
          }
          const algorithmSeconds = (now() - t1) / 1000;
          const t2 = now();
          const judged = await judgeBaseline(ctx, placement);
          rows.push({
            profile: profileId,
            adapters,
            method,
            gpus: placement.gpus?.length ?? null,
            lowerBound,
            simpleBound,
            starvingGpus: placement.gpus ? judged.starving : null,
            throughputTokensPerSecond: placement.gpus ? judged.throughput : null,
            offeredTokensPerSecond: offered * tokens,
            seconds: algorithmSeconds,
            verifySeconds: (now() - t2) / 1000,
            note: placement.failure ? `${note} (fails there too: ${placement.failure})` : note,
          });
        }
        if (replaceSizes.includes(adapters)) {
          const next = shifted(catalog, adapters);
          const changed = next.filter((a, i) => a.rate !== catalog[i]!.rate).length;
          const t3 = now();
          const again = await placeCatalog(
            placementRequestSchema.parse({
              profile: profileId,
              catalog: next,
              current: answer.gpus.map((g) => ({ adapters: g.adapters })),
            }),
            { loadProfile, loadLatencyModel, simulate: (s, p, t) => simulate(s, p, t) },
          );
          moves.push({
            profile: profileId,
            adapters,
            changed,
            moved: again.moves!.moved,
            gpus: again.totals.gpus,
            freshGpus: again.moves!.freshGpus,
            seconds: (now() - t3) / 1000,
          });
        }
        const mine = rows[rows.length - 1 - BASELINES.length]!;
        process.stdout.write(
          `${profileId} ${adapters}: loraplan ${mine.gpus} GPUs (bound ${lowerBound}) in ${seconds.toFixed(1)} s; ` +
            rows
              .slice(-BASELINES.length)
              .map((r) => `${r.method} ${r.gpus ?? 'failed'}/${r.starvingGpus ?? '-'} starving`)
              .join(', ') +
            '\n',
        );
      }
    }
  } finally {
    await pool.close();
  }
  const fmt = (v: number | null, digits = 0) => (v === null ? '—' : v.toFixed(digits));
  const lines = [
    '| profile | adapters | method | GPUs | GPUs / bound | GPUs / simple bound | starving GPUs (twin) | throughput tok/s (of offered) | time s | twin check s | note |',
    '|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---|',
    ...rows.map(
      (r) =>
        `| ${r.profile.split('/')[1]} | ${r.adapters} | ${r.method} | ${fmt(r.gpus)} | ${r.gpus === null ? '—' : (r.gpus / r.lowerBound).toFixed(2)} | ${r.gpus === null ? '—' : (r.gpus / r.simpleBound).toFixed(2)} | ${fmt(r.starvingGpus)} | ${fmt(r.throughputTokensPerSecond)} (${r.throughputTokensPerSecond === null ? '—' : ((100 * r.throughputTokensPerSecond) / r.offeredTokensPerSecond).toFixed(1)}%) | ${r.seconds.toFixed(r.seconds < 1 ? 3 : 1)} | ${fmt(r.verifySeconds, 1)} | ${r.note} |`,
    ),
  ];
  const moveLines = [
    '| profile | adapters | rates changed | adapters moved | GPUs after | GPUs, fresh placement | time s |',
    '|---|---:|---:|---:|---:|---:|---:|',
    ...moves.map(
      (m) =>
        `| ${m.profile.split('/')[1]} | ${m.adapters} | ${m.changed} | ${m.moved} (${((100 * m.moved) / m.adapters).toFixed(1)}%) | ${m.gpus} | ${m.freshGpus} | ${m.seconds.toFixed(1)} |`,
    ),
  ];
  const out = join(PACKAGE_ROOT, 'docs', 'placement');
  mkdirSync(out, { recursive: true });
  writeFileSync(
    join(out, 'bench.md'),
    `<!-- written by npm run bench:placement on ${new Date().toISOString().slice(0, 10)} -->\n\n${lines.join('\n')}\n\nRe-placement after 20% of the rates change by a factor in [0.5, 1.5]:\n\n${moveLines.join('\n')}\n`,
  );
  writeFileSync(join(out, 'bench.json'), `${JSON.stringify({ rows, moves }, null, 2)}\n`);
  const spec: TopLevelSpec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    data: {
      values: rows
        .filter((r) => r.gpus !== null)
        .map((r) => ({ ...r, profile: r.profile.split('/')[1] }))
        .concat(
          rows
            .filter((r) => r.method === 'loraplan')
            .map((r) => ({
              ...r,
              profile: r.profile.split('/')[1],
              method: 'lower bound' as never,
              gpus: r.lowerBound,
            })),
        ),
    },
    facet: { column: { field: 'profile', type: 'nominal' } },
    spec: {
      width: 320,
      height: 260,
      mark: { type: 'line', point: true },
      encoding: {
        x: {
          field: 'adapters',
          type: 'quantitative',
          scale: { type: 'log' },
          title: 'adapters in catalog',
        },
        y: { field: 'gpus', type: 'quantitative', scale: { type: 'log' }, title: 'GPUs used' },
        color: { field: 'method', type: 'nominal' },
      },
    },
  };
  writeFileSync(join(out, 'gpus.svg'), await renderSvg(spec));
  process.stdout.write(`${lines.join('\n')}\n\n${moveLines.join('\n')}\n`);
}

void main();
