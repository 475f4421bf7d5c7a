// Compares recommendations with the real optimum of each measured workload in
// models/measurements/vllm-0.8.5-h100/validation_runs.csv and writes docs/validation/recommend.md.
// Usage: npm run validate:recommend [-- --data DIR --out DIR]
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { num, readCsv, type CsvRow } from '../calibrate/csv.js';
import { loadModel } from '../model/model.js';
import { PACKAGE_ROOT } from '../profiles/store.js';
import { loadProfile } from '../profiles/store.js';
import { loadVerdictRuns } from '../profiles/verdicts.js';
import { Recommender, type RecommendResponse } from '../recommend/index.js';
import { localRecommender } from '../runtime/local.js';
import { STABLE_COMPLETION, THROUGHPUT_TIE_TOLERANCE } from '../search/index.js';
import { TWIN_VERSION } from '../twin/index.js';
import { errorSummary, pct } from './metrics.js';
import { profileOf } from './latency.js';
import { DEFAULT_DATA_DIR } from './twin.js';

export interface MeasuredPoint {
  c: number;
  p: number;
  ok: boolean;
  throughput: number;
  starving: boolean;
  /** Real tokens completed over tokens offered (throughput_vs_ideal); 0 when the run failed. */
  ratio: number;
  /**
   * Requests completed over requests offered (completion_ratio); 0 when the run failed. What
   * objective "stable" is checked against: the token ratio's offered side is the pool's mean
   * lengths, and Qwen writes 190 output tokens where the pool's mean is 200, so it reads about
   * two points low on Qwen runs whose queue stays bounded (docs/latency.md).
   */
  requestShare: number;
  ttftP99Ms: number;
  itlP99Ms: number;
}

export interface MeasuredWorkload {
  model: string;
  workload: string;
  rates: number[];
  ranks: number[];
  points: MeasuredPoint[];
  concurrentGrid: number[];
  parallelGrid: number[];
}

/**
 * Failures that say something about the pair: vLLM could not start it. A run the cluster cancelled
 * or cut at its time limit (3 of the 327) measured nothing about its pair and is left out: a
 * recommendation landing there counts as not measured, not as starving.
 */
const CONFIGURATION_FAILURES = new Set(['kv_cache_insufficient', 'cuda_oom']);

export function measuredWorkloads(dataDir: string): MeasuredWorkload[] {
  const groups = new Map<string, CsvRow[]>();
  for (const row of readCsv(join(dataDir, 'validation_runs.csv'))) {
    if (row.parse_ok !== 'True' && !CONFIGURATION_FAILURES.has(row.failure_reason ?? '')) continue;
    const key = `${row.model}|${row.workload_id}`;
    groups.set(key, [...(groups.get(key) ?? []), row]);
  }
  return [...groups.values()].map((rows) => {
    const points = rows.map((r) => {
      const ok = r.parse_ok === 'True';
      return {
        c: r.max_cpu_loras === '' ? num(r, 'max_loras') : num(r, 'max_cpu_loras'),
        p: num(r, 'max_loras'),
        ok,
        throughput: ok ? num(r, 'total_tok_s') : 0,
        starving: !ok || num(r, 'throughput_vs_ideal') < 0.9,
        ratio: ok ? num(r, 'throughput_vs_ideal') : 0,
        requestShare: ok ? num(r, 'completion_ratio') : 0,
        ttftP99Ms: ok ? num(r, 'p99_ttft_ms') : Infinity,
        itlP99Ms: ok ? num(r, 'p99_itl_ms') : Infinity,
      };
    });
    const first = rows[0]!;
    return {
      model: first.model!,
      workload: first.workload_id!,
      rates: first.adapter_rates!.trim().split(/\s+/).map(Number),
      ranks: first.adapter_ranks!.trim().split(/\s+/).map(Number),
      points,
      concurrentGrid: [...new Set(points.map((p) => p.c))].sort((a, b) => a - b),
      parallelGrid: [...new Set(points.map((p) => p.p))].sort((a, b) => a - b),
    };
  });
}

/**
 * The rule of domain.md: the measured pair with the highest throughput that does not starve; with
 * objective "stable", that completes at least 99% of the requests offered (the measurements record
 * no queue length over time, so the completion is the whole real test).
 */
export function realOptimum(
  points: MeasuredPoint[],
  objective: 'paper' | 'stable' = 'paper',
): MeasuredPoint | null {
  return points
    .filter(
      (p) => p.ok && !p.starving && (objective === 'paper' || p.requestShare >= STABLE_COMPLETION),
    )
    .reduce<MeasuredPoint | null>(
      (best, p) => (!best || p.throughput > best.throughput ? p : best),
      null,
    );
}

/**
 * The published extraction: walk each parallel line from the smallest concurrent value while
 * points pass, falling back to the line's first point even when it starves; best line wins.
 */
export function publishedOptimum(points: MeasuredPoint[]): MeasuredPoint | null {
  const lines = new Map<number, MeasuredPoint[]>();
  for (const p of points.filter((p) => p.ok)) lines.set(p.p, [...(lines.get(p.p) ?? []), p]);
  let best: MeasuredPoint | null = null;
  for (const line of lines.values()) {
    line.sort((a, b) => a.c - b.c);
    let pick = line[0]!;
    for (const p of line) {
      if (p.starving) break;
      pick = p;
    }
    if (!best || pick.throughput > best.throughput) best = pick;
  }
  return best;
}

interface Outcome {
  method: string;
  objective: 'paper' | 'stable';
  model: string;
  workload: string;
  real: MeasuredPoint;
  c: number;
  p: number;
  predictedThroughput: number;
  measured: MeasuredPoint | undefined;
  wallMs: number;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { data: { type: 'string' }, out: { type: 'string' } } });
  const dataDir = resolve(values.data ?? DEFAULT_DATA_DIR);
  const outDir = resolve(values.out ?? join(PACKAGE_ROOT, 'docs', 'validation'));
  const workloads = measuredWorkloads(dataDir);
  const local = localRecommender();
  // The edge rule reads the twin's verdict errors leave-one-workload-out: the workload being
  // recommended for never informs its own margin.
  let heldOut = '';
  const lowoRuns = (profileId: string) =>
    loadVerdictRuns(profileId).filter((r) => r.workload !== heldOut);
  const recommenders = {
    withEdge: new Recommender({
      loadProfile,
      loadModel,
      simulate: (sc, pr, t) => local.cache.simulate(sc, pr, t),
      loadVerdictRuns: lowoRuns,
    }),
    withoutEdge: new Recommender({
      loadProfile,
      loadModel,
      simulate: (sc, pr, t) => local.cache.simulate(sc, pr, t),
      edgeRule: false,
    }),
  };
  const METHODS = [
    ['model', 'model', 'withEdge'],
    ['auto', 'auto', 'withEdge'],
    ['twin', 'twin', 'withEdge'],
    ['model, edge rule off', 'model', 'withoutEdge'],
    ['auto, edge rule off', 'auto', 'withoutEdge'],
    ['twin, edge rule off', 'twin', 'withoutEdge'],
    ['auto, objective stable', 'auto', 'withEdge'],
    ['twin, objective stable', 'twin', 'withEdge'],
  ] as const;
  const objectiveOf = (method: string) =>
    method.endsWith('objective stable') ? 'stable' : 'paper';
  const outcomes: Outcome[] = [];
  /** One method's outcome on one workload of one model. */
  const outcomeOf = (method: string, model: string, workload: string) =>
    outcomes.find((x) => x.method === method && x.model === model && x.workload === workload);
  const table: string[] = [];
  try {
    for (const w of workloads) {
      const real = realOptimum(w.points);
      const published = publishedOptimum(w.points);
      if (!real) continue;
      const profile = profileOf(w.model);
      heldOut = w.workload;
      for (const [method, asked, variant] of METHODS) {
        const objective = objectiveOf(method);
        const target = realOptimum(w.points, objective);
        if (!target) continue;
        const started = performance.now();
        let response: RecommendResponse | null = null;
        try {
          response = await recommenders[variant].recommend({
            profile,
            workload: { rates: w.rates, ranks: w.ranks },
            method: asked,
            search: { concurrent: w.concurrentGrid, parallel: w.parallelGrid },
            starvationThreshold: 0.1,
            objective,
          });
        } catch (e) {
          process.stderr.write(`${w.model} ${w.workload} ${method}: ${(e as Error).message}\n`);
          continue;
        }
        const rec = response.recommendation;
        const measured = w.points.find(
          (p) => p.c === rec.concurrentAdapters && p.p === rec.parallelAdapters,
        );
        outcomes.push({
          method,
          objective,
          model: w.model,
          workload: w.workload,
          real: target,
          c: rec.concurrentAdapters,
          p: rec.parallelAdapters,
          predictedThroughput: rec.throughputTokensPerSecond,
          measured,
          wallMs: performance.now() - started,
        });
      }
      const o = (m: string) => outcomeOf(m, w.model, w.workload);
      const cell = (x: Outcome | undefined) =>
        x
          ? `${x.c} x ${x.p}${x.measured ? (x.measured.starving ? ' (starves)' : ` (${Math.round(x.measured.throughput)})`) : ' (not measured)'}`
          : 'n/a';
      // Serving pairs the real server ran within the search's tie margin of the optimum: the
      // measurement cannot tell them apart, so missing the optimum by one of them is noise.
      const ties = w.points
        .filter(
          (q) =>
            q.ok &&
            !q.starving &&
            q !== real &&
            q.throughput >= real.throughput * (1 - THROUGHPUT_TIE_TOLERANCE),
        )
        .map((q) => `${q.c} x ${q.p}`);
      table.push(
        `| ${w.model} | ${w.workload} | ${real.c} x ${real.p} (${Math.round(real.throughput)}) | ${ties.join(', ') || 'none'} | ${published ? `${published.c} x ${published.p}${published.starving ? ' (starves)' : ''}` : 'n/a'} | ${cell(o('twin'))} | ${cell(o('model'))} | ${cell(o('auto'))} |`,
      );
    }
  } finally {
    await local.close();
  }

  const summary = (method: string) => {
    const rows = outcomes.filter((o) => o.method === method);
    const err = (f: (o: Outcome) => [number, number]) =>
      errorSummary(rows.map((o) => ({ real: f(o)[0], predicted: f(o)[1] })));
    const c = err((o) => [o.real.c, o.c]);
    const p = err((o) => [o.real.p, o.p]);
    const t = err((o) => [o.real.throughput, o.predictedThroughput]);
    const lost = rows.map((o) =>
      o.measured && o.measured.ok
        ? (100 * (o.real.throughput - o.measured.throughput)) / o.real.throughput
        : NaN,
    );
    const measuredLost = lost.filter(Number.isFinite);
    const starving = rows.filter((o) => o.measured?.starving).length;
    // Objective "stable" promises the pair keeps up: count those that really do not.
    const behind = rows.filter(
      (o) => o.measured && o.measured.requestShare < STABLE_COMPLETION,
    ).length;
    const unmeasured = rows.filter((o) => !o.measured).length;
    const medianWall =
      [...rows.map((o) => o.wallMs)].sort((a, b) => a - b)[rows.length >> 1] ?? NaN;
    return `| ${method} | ${rows.length} | ${pct(c.smapePaper, 2)} / ${pct(c.smape, 2)} | ${pct(p.smapePaper, 2)} / ${pct(p.smape, 2)} | ${pct(t.smapePaper, 2)} / ${pct(t.smape, 2)} | ${measuredLost.length ? pct(measuredLost.reduce((s, v) => s + v, 0) / measuredLost.length, 2) : 'n/a'} (max ${measuredLost.length ? pct(Math.max(...measuredLost), 1) : 'n/a'}) | ${starving} | ${behind} | ${unmeasured} | ${(medianWall / 1000).toFixed(2)} s |`;
  };

  const ALL = METHODS.map(([m]) => m);
  const models = [...new Set(outcomes.map((o) => o.model))];
  const steppedBack = (m: string) =>
    outcomes.filter((o) => {
      if (o.method !== m) return false;
      const off = outcomeOf(`${m}, edge rule off`, o.model, o.workload);
      return off !== undefined && (off.c !== o.c || off.p !== o.p);
    });
  const edgeReport = (['model', 'twin', 'auto'] as const)
    .map((m) => {
      const moved = steppedBack(m);
      return `- \`${m}\`: stepped back on ${moved.length} of ${outcomes.filter((o) => o.method === m).length} workloads${moved.length ? ` (${moved.map((o) => `${o.model} ${o.workload}: ${o.c} x ${o.p}`).join('; ')})` : ''}.`;
    })
    .join('\n');
  const forestInfo = models
    .map((m) => {
      const f = loadModel(profileOf(m));
      return `- ${m}: ${f.trainingSet.rows} training workloads, CV paper-SMAPE concurrent ${pct(f.targets.concurrent.cv.smapePaper, 2)}, parallel ${pct(f.targets.parallel.cv.smapePaper, 2)}, throughput ${pct(f.targets.throughput.cv.smapePaper, 2)} (against the twin's optimum, not reality)`;
    })
    .join('\n');
  const twinMisses = outcomes
    .filter((o) => o.method === 'twin' && (o.c !== o.real.c || o.p !== o.real.p))
    .map(
      (o) =>
        `${o.model} ${o.workload} (twin ${o.c} x ${o.p}${o.measured ? `, real ${o.measured.starving ? 'starving' : `${((100 * o.measured.throughput) / o.real.throughput).toFixed(1)}% of the optimum`}` : ''})`,
    )
    .join('; ');
  // Objective "stable", workload by workload: what was picked and what the real server completed
  // there, since a pair that falls short of 99% is exactly what the objective promises against.
  const measuredCell = (x: MeasuredPoint | undefined) =>
    x
      ? `${Math.round(x.throughput)}; ${pct(100 * x.requestShare, 1)} of requests${x.requestShare < STABLE_COMPLETION ? ' **behind**' : ''}, ${pct(100 * x.ratio, 1)} of nominal tokens`
      : 'not measured';
  const stableTable = outcomes
    .filter((o) => o.method === 'twin, objective stable')
    .map((o) => {
      const auto = outcomeOf('auto, objective stable', o.model, o.workload);
      return `| ${o.model} | ${o.workload} | ${o.real.c} x ${o.real.p} (${measuredCell(o.real)}) | ${o.c} x ${o.p} (${measuredCell(o.measured)}) | ${auto ? `${auto.c} x ${auto.p} (${measuredCell(auto.measured)})` : 'n/a'} |`;
    })
    .join('\n');
  const src = relative(PACKAGE_ROOT, dataDir);
  const md = `# Recommendations against the real optimum

Generated by \`npm run validate:recommend\` (twin ${TWIN_VERSION}). For each measured workload of
\`${src}/validation_runs.csv\` (4 per model), the real optimum is the measured pair with the highest
throughput that does not starve (real throughput_vs_ideal >= 0.9), on the grid that was measured.
Each method recommends on that same grid; the recommended pair is then looked up in the real
measurements. Throughputs in parentheses are real tokens/s.

| model | workload | real optimum | real pairs within 0.5% | published extraction | twin search | forest (model) | auto |
|---|---|---|---|---|---|---|---|
${table.join('\n')}

## Errors per target (paper SMAPE / conventional SMAPE)

The throughput target compares the method's predicted throughput of its pair with the real
optimum's throughput. Rows "objective stable" are compared with the real stable optimum: the
measured pair with the highest throughput that does not starve and completes at least 99% of the
requests offered (\`completion_ratio\`; the measurements hold no queue length over time, so
completion is the whole real test); workloads where no measured pair does are left out of those
rows. A negative "throughput lost" there means
the recommended pair serves more than that optimum because it does not really complete 99%
(the next column counts those). "Throughput lost" is the real throughput of the recommended pair below the
real optimum's (0% = the optimum itself).

| method | workloads | concurrent | parallel | throughput | throughput lost, mean (max) | recommended pairs that starve in reality | that complete < 99% in reality | recommended pairs not measured | median time |
|---|---|---|---|---|---|---|---|---|---|
${ALL.map(summary).join('\n')}

### Objective stable, workload by workload

The real stable optimum is the measured pair with the highest throughput that completes at least
99% of the requests offered; in parentheses, real tokens/s, the share of the offered requests the
real server completed (**behind**: under 99%, so its queue grew) and, for comparison, its tokens
over the nominal offered tokens (\`throughput_vs_ideal\`).

Why requests and not the token ratio: the token ratio's offered side is the expected requests
times the prompt pool's mean lengths, and a model that writes shorter answers than the pool reads
low with no queue at all. Qwen's completed requests average 190.4 output tokens against the
pool's 200.0 (Llama: 194.1 against 196.4; data README), so on the same request stream, the
192 x 64 runs of both models complete 99.7% (Llama) and 99.9% (Qwen) of their requests while the
token ratio reads 99.8% and 98.0%. Over the runs that complete at least 99% of their requests,
the token ratio sits 1.45-2.60 points (median 1.90) under the request share on Qwen (40 runs), and
between 0.70 under and 0.54 over (median 0.15 over) on Llama (33 runs). Earlier versions of this report used the token
ratio, and called Qwen's 192 x 64 picks behind.

| model | workload | real stable optimum | twin, objective stable | auto, objective stable |
|---|---|---|---|---|
${stableTable}

## The edge rule: what it costs and saves

A pair the twin puts just above the starvation line may starve on the real server. From the
twin's measured verdict errors (\`models/verdicts/\`, written by \`npm run validate:twin\`), each
pair's chance of really starving is the share of measured runs the twin called serving whose
completion ratio the twin overstated by more than this pair's distance above the line
(\`src/recommend/edge.ts\`). \`twin\` and \`auto\` step down their line while the neighbour's
expected served throughput (throughput x chance of serving) is higher; \`model\` does the same in
closed form, from the forest's predicted completion ratio, pricing fewer adapters as the GPU
completing the same tokens. The errors are taken
leave-one-workload-out here: a workload's own runs never inform its answer. The rows "edge rule
off" take the twin at its word; comparing them with \`twin\` and \`auto\` gives the rule's cost
(throughput lost) and saving (pairs that starve in reality).

${edgeReport}

## The forests

${forestInfo}

## Reading

With four workloads per model the SMAPE of the concurrent and parallel targets moves in large steps:
one grid step off on one workload is a 10-20% error on that workload, 1-4% over the eight. The
published figure (at most 7.2% paper SMAPE) was measured on 18 workloads against its own twin's
optimum. Some real optima have a neighbour within the search's 0.5% tie margin (fourth column):
the measurements cannot tell those apart.

Where the twin's answer differs from the real optimum: ${twinMisses || 'nowhere'}. The twin calls
a pair starving when its completion ratio falls below 0.9; near that edge its throughput bias
(docs/validation/twin.md) decides. \`auto\` accepts only pairs the twin says serve, so it
inherits those verdicts; the forest, fitted over hundreds of workloads, is not tied to one
simulation's verdict at the edge.
`;
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, 'recommend.md'), md);
  process.stdout.write(
    `${ALL.map(summary).join('\n')}\n${edgeReport}\nwrote ${join(outDir, 'recommend.md')}\n`,
  );
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].replace(/^.*\/dist\//, 'dist/'))) {
  main().catch((e: unknown) => {
    process.stderr.write(`validate:recommend: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = 1;
  });
}
