// Validates the twin against every real run in models/measurements/vllm-0.8.5-h100/validation_runs.csv and
// writes docs/validation/twin.md, twin-throughput.svg and twin-runs.csv.
// Usage: npm run validate:twin [-- --data DIR --out DIR --threads N --only MODEL]
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { renderSvg } from '../charts/svg.js';
import { MEASUREMENTS_DIR } from '../calibrate/calibrate.js';
import { num, readCsv } from '../calibrate/csv.js';
import { PACKAGE_ROOT } from '../profiles/store.js';
import { verdictRunsPath } from '../profiles/verdicts.js';
import type { VerdictRuns } from '../profiles/verdicts.js';
import { SimulationPool } from '../runtime/pool.js';
import { scenarioForRun } from '../calibrate/runs.js';
import { lengthLabel } from '../latency/index.js';
import { withTtftAcrossArrivals } from '../search/index.js';
import {
  DEFAULT_STARVATION_THRESHOLD,
  KEEPS_UP_RATIO,
  TWIN_VERSION,
  type Profile,
} from '../twin/index.js';
import { errorSummary, median, pct, type ErrorSummary } from './metrics.js';
import {
  fitPooled,
  jointSloCoverage,
  latencyFigures,
  latencySection,
  profileOf,
} from './latency.js';
import { latencyModelPath } from '../profiles/latency.js';
import { loadProfile } from '../profiles/store.js';
import { readServingRuns } from '../calibrate/runs.js';
import { EXTRAPOLATED_METRICS } from './regimes.js';
import { regimeValidation } from './extrapolation-report.js';
import { CAUSES, tailShares } from './tail.js';
import type { RunComparison } from './comparison.js';

export type { RunComparison } from './comparison.js';

export const DEFAULT_DATA_DIR = MEASUREMENTS_DIR;

/** String columns of RunComparison; booleans are 'true'/'false'; every other column a number. */
const TEXT_COLUMNS = new Set([
  'model',
  'workload',
  'run',
  'adapterRates',
  'adapterRanks',
  'requestLengths',
  'realFailure',
]);
const BOOLEAN_COLUMNS = new Set(['realOk', 'twinFeasible', 'realStarving', 'twinStarving']);

/**
 * The comparisons a validate:twin run wrote (twin-runs.csv), read back: the latency fits and the
 * regime validation redone without simulating again (`validate:twin -- --runs FILE`).
 */
export function readComparisons(path: string): RunComparison[] {
  return readCsv(path).map((row) => {
    const entries = Object.entries(row).map(([k, v]): [string, unknown] => [
      k,
      TEXT_COLUMNS.has(k)
        ? v
        : BOOLEAN_COLUMNS.has(k)
          ? v === 'true'
          : v.trim() === ''
            ? Number.NaN
            : Number(v),
    ]);
    return Object.fromEntries(entries) as unknown as RunComparison;
  });
}

/**
 * The twin against every real run. `profiles` replaces a shipped profile by id (validate:derived
 * passes a derived one for the model it holds out).
 */
export async function compareRuns(
  dataDir: string,
  threads?: number,
  only?: string,
  profiles: ReadonlyMap<string, Profile> = new Map(),
  workload?: string,
): Promise<RunComparison[]> {
  const rows = readCsv(join(dataDir, 'validation_runs.csv')).filter(
    (r) => (!only || r.model === only) && (!workload || r.workload_id === workload),
  );
  const published = new Map(
    readCsv(join(dataDir, 'published_twin_vs_real.csv')).map((r) => [
      `${r.model}|${r.workload_id}|${r.run_id}`,
      r,
    ]),
  );
  const pool = new SimulationPool(threads ? { threads } : {});
  try {
    // As the service simulates: TTFT across arrival realisations where one is a lottery.
    const profileFor = (id: string) => profiles.get(id) ?? loadProfile(id);
    const simulate = withTtftAcrossArrivals((scenario) => {
      const replaced = profiles.get(scenario.profile);
      return pool.run(replaced ? { scenario, profile: replaced } : { scenario });
    });
    const scenarios = rows.map((row) => scenarioForRun(row));
    const results = await Promise.all(
      scenarios.map((scenario) =>
        simulate(scenario, profileFor(scenario.profile), DEFAULT_STARVATION_THRESHOLD),
      ),
    );
    return rows.map((row, i) => {
      const r = results[i]!;
      const { config, workload, durationSeconds } = scenarios[i]!;
      const pub = published.get(`${row.model}|${row.workload_id}|${row.run_id}`);
      const realOk = row.parse_ok === 'True';
      return {
        model: row.model!,
        workload: row.workload_id!,
        run: row.run_id!,
        maxLoras: num(row, 'max_loras'),
        maxCpuLoras: row.max_cpu_loras === '' ? num(row, 'max_loras') : num(row, 'max_cpu_loras'),
        maxLoraRank: num(row, 'max_lora_rank'),
        adapterRates: (workload.rates ?? []).join(' '),
        adapterRanks: (workload.ranks ?? []).join(' '),
        maxNumBatchedTokens: config.maxNumBatchedTokens,
        maxNumSeqs: config.maxNumSeqs,
        durationSeconds,
        requestLengths: lengthLabel(workload.requestLengths),
        realOk,
        realFailure: row.failure_reason ?? '',
        twinFeasible: r.feasible,
        realThroughput: realOk ? num(row, 'total_tok_s') : NaN,
        twinThroughput: r.throughputTokensPerSecond,
        publishedThroughput: pub && pub.sim_total_tok_s !== '' ? num(pub, 'sim_total_tok_s') : NaN,
        publishedItlMs: pub && pub.sim_itl_ms !== '' ? num(pub, 'sim_itl_ms') : NaN,
        realStarving: realOk ? num(row, 'throughput_vs_ideal') < 0.9 : false,
        twinStarving: r.starving,
        realCompletionRatio: realOk ? num(row, 'throughput_vs_ideal') : NaN,
        twinCompletionRatio:
          r.offeredTokensPerSecond > 0 ? r.throughputTokensPerSecond / r.offeredTokensPerSecond : 1,
        realTtftMs: realOk ? num(row, 'mean_ttft_ms') : NaN,
        twinTtftMs: r.ttftMs.mean,
        realItlMs: realOk ? num(row, 'mean_itl_ms') : NaN,
        twinItlMs: r.itlMs.mean,
        realTtftP50Ms: realOk ? num(row, 'median_ttft_ms') : NaN,
        realTtftP99Ms: realOk ? num(row, 'p99_ttft_ms') : NaN,
        realItlP50Ms: realOk ? num(row, 'median_itl_ms') : NaN,
        realItlP99Ms: realOk ? num(row, 'p99_itl_ms') : NaN,
        twinTtftP50Ms: r.ttftAcrossArrivals?.p50 ?? r.ttftMs.p50,
        twinTtftP99Ms: r.ttftAcrossArrivals?.p99 ?? r.ttftMs.p99,
        twinTtftRealisations: r.ttftAcrossArrivals?.realisations ?? 1,
        twinItlP50Ms: r.itlMs.p50,
        twinItlP99Ms: r.itlMs.p99,
        twinMeanRunningRequests: r.meanRunningRequests,
        twinWallMs: r.wallTimeMs ?? 0,
      };
    });
  } finally {
    await pool.close();
  }
}

export interface ModelSummary {
  model: string;
  runs: number;
  throughput: ErrorSummary;
  publishedThroughput: ErrorSummary;
  throughputNonStarving: ErrorSummary;
  throughputStarving: ErrorSummary;
  ttft: ErrorSummary;
  itl: ErrorSummary;
  publishedItl: ErrorSummary;
  verdictAgreement: number;
  verdictRuns: number;
  startupAgreement: number;
  startupRuns: number;
  medianWallMs: number;
  maxWallMs: number;
}

export function summarize(model: string, runs: RunComparison[]): ModelSummary {
  const ok = runs.filter((r) => r.realOk);
  // Start-up verdict: the twin calls a configuration infeasible exactly when vLLM failed for lack of KV cache.
  const startup = runs.filter((r) => r.realOk || r.realFailure === 'kv_cache_insufficient');
  return {
    model,
    runs: ok.length,
    throughput: errorSummary(
      ok.map((r) => ({ real: r.realThroughput, predicted: r.twinThroughput })),
    ),
    publishedThroughput: errorSummary(
      ok.map((r) => ({ real: r.realThroughput, predicted: r.publishedThroughput })),
    ),
    throughputNonStarving: errorSummary(
      ok
        .filter((r) => !r.realStarving)
        .map((r) => ({ real: r.realThroughput, predicted: r.twinThroughput })),
    ),
    throughputStarving: errorSummary(
      ok
        .filter((r) => r.realStarving)
        .map((r) => ({ real: r.realThroughput, predicted: r.twinThroughput })),
    ),
    ttft: errorSummary(ok.map((r) => ({ real: r.realTtftMs, predicted: r.twinTtftMs }))),
    itl: errorSummary(ok.map((r) => ({ real: r.realItlMs, predicted: r.twinItlMs }))),
    publishedItl: errorSummary(ok.map((r) => ({ real: r.realItlMs, predicted: r.publishedItlMs }))),
    verdictAgreement: ok.filter((r) => r.realStarving === r.twinStarving).length / ok.length,
    verdictRuns: ok.length,
    startupAgreement: startup.filter((r) => r.realOk === r.twinFeasible).length / startup.length,
    startupRuns: startup.length,
    medianWallMs: median(runs.map((r) => r.twinWallMs)),
    maxWallMs: Math.max(...runs.map((r) => r.twinWallMs)),
  };
}

function chartSpec(runs: RunComparison[]) {
  const points = runs
    .filter((r) => r.realOk)
    .map((r) => ({
      model: r.model,
      real: r.realThroughput,
      twin: r.twinThroughput,
      verdict: r.realStarving ? 'starving (real)' : 'not starving (real)',
      run: `${r.workload} ${r.maxLoras}x${r.maxCpuLoras}`,
    }));
  const max = Math.max(...points.flatMap((p) => [p.real, p.twin])) * 1.05;
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: 'Twin vs real vLLM 0.8.5 throughput (one point per run; diagonal = perfect)',
    width: 320,
    height: 320,
    data: { values: points },
    facet: { column: { field: 'model', type: 'nominal' as const, title: null } },
    spec: {
      layer: [
        {
          data: { values: [{ a: 0 }, { a: max }] },
          mark: { type: 'line' as const, color: '#999', strokeDash: [4, 4] },
          encoding: {
            x: { field: 'a', type: 'quantitative' as const, scale: { domain: [0, max] } },
            y: { field: 'a', type: 'quantitative' as const, scale: { domain: [0, max] } },
          },
        },
        {
          mark: { type: 'point' as const, filled: true, opacity: 0.7 },
          encoding: {
            x: {
              field: 'real',
              type: 'quantitative' as const,
              title: 'real throughput (tok/s)',
              scale: { domain: [0, max] },
            },
            y: {
              field: 'twin',
              type: 'quantitative' as const,
              title: 'twin throughput (tok/s)',
              scale: { domain: [0, max] },
            },
            color: { field: 'verdict', type: 'nominal' as const, title: null },
            shape: { field: 'verdict', type: 'nominal' as const, title: null },
          },
        },
      ],
    },
  };
}

function report(
  summaries: ModelSummary[],
  dataDir: string,
  command: string,
  latency: string,
): string {
  const row = (label: string, f: (s: ModelSummary) => string) =>
    `| ${label} | ${summaries.map(f).join(' | ')} |`;
  const head = `| | ${summaries.map((s) => s.model).join(' | ')} |\n|---|${summaries.map(() => '---').join('|')}|`;
  const src = relative(PACKAGE_ROOT, dataDir) || dataDir;
  return `# Twin validation against real vLLM 0.8.5 runs

Generated by \`${command}\` (twin ${TWIN_VERSION}). Each real run of
\`${src}/validation_runs.csv\` is simulated with the same model, flags, per-adapter rates and
ranks, adapter count and 3600 s window, seed 1, with the measurements' client limit on requests
in flight; where the twin keeps up behind a queue that comes and goes, its TTFT is the median
over seeds 1-5, as the service reads it (docs/latency.md). The published twin's numbers are the \`sim_*\` columns of
\`${src}/published_twin_vs_real.csv\` on the same runs. Per-run numbers: [twin-runs.csv](twin-runs.csv).

The LoRA terms of the step-time model are fitted on these runs (docs/profiles.md: their mean ITL
where they keep up, their throughput where they fall behind; the calibration table only covers
300 slots of rank 8), so for that part of the model these are in-sample figures; every other
coefficient comes from the calibration tables. Refitted without each workload:
[twin-lowo.md](twin-lowo.md).

![twin vs real throughput](twin-throughput.svg)

## Throughput (tokens/s of requests completed inside the window)
${head}
${row('runs with a summary', (s) => String(s.runs))}
${row('**MAPE, this twin**', (s) => `**${pct(s.throughput.mape, 2)}**`)}
${row('MAPE, published twin', (s) => pct(s.publishedThroughput.mape, 2))}
${row('paper SMAPE, this twin', (s) => pct(s.throughput.smapePaper, 2))}
${row('paper SMAPE, published twin', (s) => pct(s.publishedThroughput.smapePaper, 2))}
${row('conventional SMAPE, this twin', (s) => pct(s.throughput.smape, 2))}
${row('**signed bias, this twin**', (s) => `**${pct(s.throughput.bias, 2)}**`)}
${row('signed bias, published twin', (s) => pct(s.publishedThroughput.bias, 2))}
${row('worst run, this twin', (s) => pct(s.throughput.maxApe, 1))}
${row('MAPE on runs that do not starve', (s) => `${pct(s.throughputNonStarving.mape, 2)} (n=${s.throughputNonStarving.n})`)}
${row('MAPE on runs that starve', (s) => `${pct(s.throughputStarving.mape, 2)} (n=${s.throughputStarving.n})`)}

## Starvation verdict and start-up
${head}
${row('**starvation verdict agreement** (real: throughput_vs_ideal < 0.9)', (s) => `**${pct(100 * s.verdictAgreement, 1)}** of ${s.verdictRuns}`)}
${row('start-up verdict agreement (ran vs kv_cache_insufficient)', (s) => `${pct(100 * s.startupAgreement, 1)} of ${s.startupRuns}`)}

## Latency (mean over completed requests)
${head}
${row('ITL paper SMAPE, this twin', (s) => pct(s.itl.smapePaper, 1))}
${row('ITL paper SMAPE, published twin', (s) => pct(s.publishedItl.smapePaper, 1))}
${row('ITL MAPE / bias, this twin', (s) => `${pct(s.itl.mape, 1)} / ${pct(s.itl.bias, 1)}`)}
${row('TTFT paper SMAPE, this twin', (s) => pct(s.ttft.smapePaper, 1))}
${row('TTFT MAPE / bias, this twin', (s) => `${pct(s.ttft.mape, 1)} / ${pct(s.ttft.bias, 1)}`)}

The published TTFT figures (17.6% / 17.9% paper SMAPE) use a different definition (unfinished
requests penalised with the window length), so they are not repeated beside ours, which compare
the benchmark's own mean TTFT over completed requests.

## Latency tails: p50 and p99 TTFT and ITL, with intervals

The published twin reports no percentile, so there is no published counterpart to these rows.
"twin" is the simulation as is; "corrected" is what the service returns (src/latency): for each
workload, the correction and the interval widths are fitted on the other workloads' runs only,
so every corrected figure and every coverage below is out of sample. Mechanisms and their share
of the tail: [docs/latency.md](../latency.md). Throughput leave-one-workload-out:
[twin-lowo.md](twin-lowo.md).

${latency}

## Speed (two runs at a time on 2 cores; single-run timings: docs/performance.md)
${head}
${row('median wall time per run', (s) => `${(s.medianWallMs / 1000).toFixed(2)} s`)}
${row('max wall time per run', (s) => `${(s.maxWallMs / 1000).toFixed(2)} s`)}
`;
}

/**
 * The twin's ITL tail by cause, on the runs that keep up, beside the part of the real p99 ITL the
 * engine does not produce at all (what the correction in src/latency stands for).
 */
function tailReport(dataDir: string, runs: RunComparison[]): string {
  const label: Record<(typeof CAUSES)[number], string> = {
    decodeMs: 'decode (fixed cost, one token per request, KV read)',
    prefillMs: 'prefill chunks sharing the step',
    recomputeMs: 'recompute after preemption',
    loraMs: 'LoRA kernels (slots, adapters, tokens)',
    schedulerMs: 'scheduler CPU (running + scanned waiting requests)',
    adapterLoadMs: 'adapter loads stalling the step',
  };
  const models = [...new Set(runs.map((r) => r.model))];
  const perModel = models.map((model) => {
    const keep = runs.filter(
      (r) =>
        r.model === model && r.realOk && r.twinFeasible && r.realCompletionRatio >= KEEPS_UP_RATIO,
    );
    const keys = new Set(keep.map((r) => `${r.workload}|${r.run}`));
    const profile = loadProfile(profileOf(model));
    const serving = readServingRuns(dataDir, model).filter((r) =>
      keys.has(`${r.workload}|${r.run}`),
    );
    const all = serving.map((r) => tailShares(r.scenario, profile));
    const mean = (f: (t: (typeof all)[number]) => number) =>
      all.reduce((s, t) => s + f(t), 0) / Math.max(1, all.length);
    const beyond = keep
      .filter((r) => r.realItlP99Ms > 0)
      .map((r) => Math.max(0, 1 - r.twinItlP99Ms / r.realItlP99Ms));
    beyond.sort((a, b) => a - b);
    return {
      model,
      runs: all.length,
      tail: Object.fromEntries(CAUSES.map((c) => [c, mean((t) => t.shares[c])])),
      typical: Object.fromEntries(CAUSES.map((c) => [c, mean((t) => t.typical[c])])),
      beyondTwin: beyond[beyond.length >> 1] ?? NaN,
    };
  });
  const head = `| cause | ${perModel.map((m) => `${m.model}: share of p99-and-slower steps / of all decode steps`).join(' | ')} |\n|---|${perModel.map(() => '---').join('|')}|`;
  const rows = CAUSES.map(
    (c) =>
      `| ${label[c]} | ${perModel.map((m) => `${pct(100 * m.tail[c]!)} / ${pct(100 * m.typical[c]!)}`).join(' | ')} |`,
  );
  return `# Where the ITL tail comes from

Generated by \`npm run validate:twin\` (twin ${TWIN_VERSION}) on the real runs that keep up (real
throughput at least 95% of offered: ${perModel.map((m) => `${m.runs} ${m.model}`).join(', ')}). Each run is
simulated with a step observer. A decode token waits for its whole step, so a step's duration is
the ITL gap of every request decoding in it; the tail steps are the slowest steps carrying the top
1% of decode tokens (the p99 ITL and above). Each cell is the share of those steps' time spent on
the cause, averaged over runs, beside the same share over all decode steps.

${head}
${rows.join('\n')}

**Beyond the engine.** The real p99 ITL is longer than the twin's: in the median run that keeps up,
${perModel.map((m) => `${pct(100 * m.beyondTwin)} of the real p99 ITL (${m.model})`).join(' and ')} is not produced by
any engine step the twin models. That part comes from outside the engine (the API server streaming
every running request's tokens from one process, the benchmark client timing chunks), and is what
the correction in src/latency stands for (docs/latency.md).
`;
}

function toCsv(runs: RunComparison[]): string {
  const cols = Object.keys(runs[0]!) as Array<keyof RunComparison>;
  const fmt = (v: unknown) =>
    typeof v === 'number'
      ? Number.isFinite(v)
        ? String(Number(v.toPrecision(7)))
        : ''
      : String(v);
  return (
    [cols.join(','), ...runs.map((r) => cols.map((c) => fmt(r[c])).join(','))].join('\n') + '\n'
  );
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      data: { type: 'string' },
      out: { type: 'string' },
      threads: { type: 'string' },
      only: { type: 'string' },
      runs: { type: 'string' },
    },
  });
  const dataDir = resolve(values.data ?? DEFAULT_DATA_DIR);
  const outDir = resolve(values.out ?? join(PACKAGE_ROOT, 'docs', 'validation'));
  const runs = values.runs
    ? readComparisons(resolve(values.runs))
    : await compareRuns(dataDir, values.threads ? Number(values.threads) : undefined, values.only);
  const models = [...new Set(runs.map((r) => r.model))];
  const summaries = models.map((m) =>
    summarize(
      m,
      runs.filter((r) => r.model === m),
    ),
  );
  // Latency correction: one pooled fit, written for each profile with that profile's intervals.
  const fit = fitPooled(
    runs,
    `${relative(PACKAGE_ROOT, dataDir)}/validation_runs.csv (runs the real server completed, both models)`,
  );
  const compared = runs.filter((r) => r.realOk && r.twinFeasible);
  const latency = models.map((model) => {
    const rows = fit.outOfFold
      .map((f, i) => ({
        ...f,
        realRatio: compared[i]!.realCompletionRatio,
        model: compared[i]!.model,
      }))
      .filter((f) => f.model === model);
    return { model, figures: latencyFigures(rows), joint: jointSloCoverage(rows) };
  });
  // Whole regimes held out: how the intervals fare beyond the fitting runs, and how much they
  // must grow with the distance from them (written into each profile's model).
  const regimes = regimeValidation(runs);
  for (const [profile, latencyModel] of Object.entries(fit.models)) {
    for (const metric of EXTRAPOLATED_METRICS)
      latencyModel.metrics[metric] = {
        ...latencyModel.metrics[metric],
        extrapolation: regimes.growth[metric],
      };
    const file = latencyModelPath(profile);
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, `${JSON.stringify(latencyModel, null, 1)}\n`);
  }
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, 'latency-tail.md'), tailReport(dataDir, runs));
  writeFileSync(
    join(outDir, 'twin.md'),
    report(summaries, dataDir, 'npm run validate:twin', latencySection(latency, fit)),
  );
  writeFileSync(join(outDir, 'twin-runs.csv'), toCsv(runs));
  writeFileSync(join(outDir, 'extrapolation.md'), regimes.report);
  // The twin's verdict errors, per profile: what the recommender's edge rule reads.
  for (const model of [...new Set(runs.map((r) => r.model))]) {
    const profile = profileOf(model);
    const file = verdictRunsPath(profile);
    mkdirSync(dirname(file), { recursive: true });
    const verdicts: VerdictRuns = {
      profile,
      twinVersion: TWIN_VERSION,
      source: `${relative(PACKAGE_ROOT, dataDir)}/validation_runs.csv (runs the real server completed)`,
      runs: runs
        .filter((r) => r.model === model && r.realOk && r.twinFeasible)
        .map((r) => ({
          workload: r.workload,
          twinRatio: Number(r.twinCompletionRatio.toFixed(5)),
          realRatio: Number(r.realCompletionRatio.toFixed(5)),
        })),
    };
    writeFileSync(
      file,
      `${JSON.stringify(verdicts, null, 1)}
`,
    );
  }
  writeFileSync(join(outDir, 'twin-throughput.svg'), await renderSvg(chartSpec(runs)));
  for (const s of summaries) {
    process.stdout.write(
      `${s.model}: throughput MAPE ${pct(s.throughput.mape, 2)} (published ${pct(s.publishedThroughput.mape, 2)}), ` +
        `bias ${pct(s.throughput.bias, 2)}, paper SMAPE ${pct(s.throughput.smapePaper, 2)}, ` +
        `non-starving ${pct(s.throughputNonStarving.mape, 2)}, starving ${pct(s.throughputStarving.mape, 2)}, ` +
        `verdict ${pct(100 * s.verdictAgreement)}, ITL MAPE ${pct(s.itl.mape)} bias ${pct(s.itl.bias)}, ` +
        `TTFT SMAPEp ${pct(s.ttft.smapePaper)}, wall median ${(s.medianWallMs / 1000).toFixed(2)} s max ${(s.maxWallMs / 1000).toFixed(2)} s\n`,
    );
  }
  for (const { model, figures } of latency) {
    const k = figures.keepsUp;
    process.stdout.write(
      `${model} (runs that keep up, out of fold): p99 ITL MAPE ${pct(k.itlP99.mape)} ratio ${k.itlP99.medianRatio.toFixed(2)} coverage ${pct(100 * k.itlP99.coverage)} under bound ${pct(100 * k.itlP99.sloCoverage)}; ` +
        `p99 TTFT MAPE ${pct(k.ttftP99.mape)} ratio ${k.ttftP99.medianRatio.toFixed(2)} coverage ${pct(100 * k.ttftP99.coverage)} under bound ${pct(100 * k.ttftP99.sloCoverage)}\n`,
    );
  }
  process.stdout.write(`wrote ${join(outDir, 'twin.md')}\n`);
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].replace(/^.*\/dist\//, 'dist/'))) {
  main().catch((e: unknown) => {
    process.stderr.write(`validate:twin: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = 1;
  });
}
