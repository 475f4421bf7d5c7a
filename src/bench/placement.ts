import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
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
import { lengthsFor } from '../placement/estimate.js';
import { VERIFY_SECONDS, judgeGpu, type PlacementContext } from '../placement/gpu.js';
import { PLACEMENT_CONCURRENCY, mapLimited } from '../placement/loraplan.js';
import { placeCatalog, placementRequestSchema, zipfCatalog } from '../placement/index.js';
import { vllmStarts } from '../twin/index.js';

/**
 * npm run bench:placement: loraplan against the four baselines on heavy-tailed catalogs of 200 to
 * 10,000 adapters, both profiles; every GPU of every answer judged by a one-hour twin run. Writes
 * docs/placement-bench.md (the table) and docs/placement-gpus.svg (GPUs against catalog size).
 * `--sizes 200,1000` and `--profiles` narrow it.
 */
const PROFILES = ['h100-64gb/llama-3.1-8b-instruct', 'h100-64gb/qwen-2.5-7b-instruct'];
const SIZES = [200, 1000, 5000, 10000];
/** Mean requests/s per adapter: 200 adapters fill about two GPUs, 10,000 about a hundred. */
const MEAN_RATE = 0.2;

interface Row {
  profile: string;
  adapters: number;
  method: 'loraplan' | BaselineName;
  gpus: number | null;
  lowerBound: number;
  starvingGpus: number | null;
  throughputTokensPerSecond: number | null;
  offeredTokensPerSecond: number;
  seconds: number;
  verifySeconds: number | null;
  note: string;
}

const arg = (name: string) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
};

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

async function main() {
  const sizes = arg('--sizes')?.split(',').map(Number) ?? SIZES;
  const profiles = arg('--profiles')?.split(',') ?? PROFILES;
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
        const ctx: PlacementContext = {
          profile,
          lengths: lengthsFor(profile, { kind: 'sharegpt' }),
          requestLengths: { kind: 'sharegpt' },
          starvationThreshold: 0.1,
          objective: 'paper',
          simulate: (s, p, t) => simulate(s, p, t),
        };
        const tokens = ctx.lengths.prompt + ctx.lengths.output;
        const lowerBound = answer.lowerBound.gpus;
        rows.push({
          profile: profileId,
          adapters,
          method: 'loraplan',
          gpus: answer.totals.gpus,
          lowerBound,
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
        for (const method of BASELINES) {
          const t1 = now();
          const placement =
            method === 'published-greedy'
              ? publishedGreedy(ctx, catalog)
              : method === 'loraserve'
                ? loraServe(ctx, catalog, operatingPoints)
                : method === 'ffd-rate'
                  ? firstFitDecreasing(ctx, catalog, operatingPoints.get(highest)!)
                  : roundRobin(ctx, catalog, lowerBound);
          const algorithmSeconds = (now() - t1) / 1000;
          const t2 = now();
          const judged = await judgeBaseline(ctx, placement);
          rows.push({
            profile: profileId,
            adapters,
            method,
            gpus: placement.gpus?.length ?? null,
            lowerBound,
            starvingGpus: placement.gpus ? judged.starving : null,
            throughputTokensPerSecond: placement.gpus ? judged.throughput : null,
            offeredTokensPerSecond: offered * tokens,
            seconds: algorithmSeconds,
            verifySeconds: (now() - t2) / 1000,
            note: placement.failure ?? '',
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
    '| profile | adapters | method | GPUs | GPUs / bound | starving GPUs (twin) | throughput tok/s (of offered) | time s | twin check s | note |',
    '|---|---:|---|---:|---:|---:|---:|---:|---:|---|',
    ...rows.map(
      (r) =>
        `| ${r.profile.split('/')[1]} | ${r.adapters} | ${r.method} | ${fmt(r.gpus)} | ${r.gpus === null ? '—' : (r.gpus / r.lowerBound).toFixed(2)} | ${fmt(r.starvingGpus)} | ${fmt(r.throughputTokensPerSecond)} (${r.throughputTokensPerSecond === null ? '—' : ((100 * r.throughputTokensPerSecond) / r.offeredTokensPerSecond).toFixed(1)}%) | ${r.seconds.toFixed(r.seconds < 1 ? 3 : 1)} | ${fmt(r.verifySeconds, 1)} | ${r.note} |`,
    ),
  ];
  const out = join(PACKAGE_ROOT, 'docs');
  writeFileSync(
    join(out, 'placement-bench.md'),
    `<!-- written by npm run bench:placement on ${new Date().toISOString().slice(0, 10)} -->\n\n${lines.join('\n')}\n`,
  );
  writeFileSync(join(out, 'placement-bench.json'), `${JSON.stringify(rows, null, 2)}\n`);
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
  writeFileSync(join(out, 'placement-gpus.svg'), await renderSvg(spec));
  process.stdout.write(`${lines.join('\n')}\n`);
}

void main();
