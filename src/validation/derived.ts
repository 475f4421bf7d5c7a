// Validates derived profiles leave one model out: the factors are learned from one measured
// model, the other model's H100 profile is derived, and that profile is compared with the other
// model's real runs as validate:twin and validate:recommend compare the calibrated one. Writes
// docs/validation/derived.md and what derived profiles answer with: their expected error
// (models/derived/expected-error.json), verdict runs for the edge rule
// (models/verdicts/derived.json) and latency model (models/latency/derived.json).
// Usage: npm run validate:derived [-- --data DIR --out DIR --threads N --cache FILE.json]
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import {
  derive,
  kvBytesPerToken,
  readDeriveCatalog,
  type DeriveCatalog,
  type ModelShape,
} from '../derive/index.js';
import { LATENCY_METRICS, type LatencyModel, type LatencyMetric } from '../latency/index.js';
import { loadModel } from '../model/model.js';
import { derivedLatencyPath, derivedVerdictsPath } from '../profiles/derived.js';
import { PACKAGE_ROOT, loadProfile } from '../profiles/store.js';
import type { VerdictRun, VerdictRuns } from '../profiles/verdicts.js';
import { Recommender } from '../recommend/index.js';
import { localRecommender } from '../runtime/local.js';
import { kvCacheTokens, vllmStarts, TWIN_VERSION, type Profile } from '../twin/index.js';
import { errorSummary, pct, type ErrorSummary } from './metrics.js';
import {
  fitPooled,
  latencyFigures as figuresOf,
  profileOf,
  type MetricFigures,
} from './latency.js';
import { measuredWorkloads, realOptimum } from './recommend.js';
import { compareRuns, DEFAULT_DATA_DIR, readComparisons, type RunComparison } from './twin.js';

const MODELS = ['llama-3.1-8b-instruct', 'qwen-2.5-7b-instruct'] as const;
const MODELS_DIR = join(PACKAGE_ROOT, 'models');

interface Fold {
  held: string;
  fitOn: string[];
  outOfFold: boolean;
  profile: Profile;
}

interface KvFigures {
  rows: number;
  within2: number;
  maxAbsPct: number;
  maxAbsGiB: number;
  startupAgreement: number;
  startupRows: number;
}

/** The single-model folds' learned non-torch remainders, and how far apart they are. */
function otherSpread(folds: readonly Fold[]): string {
  const single = folds.filter((f) => f.fitOn.length === 1);
  const others = single.map((f) => ({
    from: f.fitOn[0]!,
    gib: (f.profile.derivation as { factors: { otherGiB: number } }).factors.otherGiB,
  }));
  const gibs = others.map((o) => o.gib);
  const list = others.map((o) => `${o.gib.toFixed(3)} GiB from ${o.from}`).join(', ');
  return `${list}; apart by ${(Math.max(...gibs) - Math.min(...gibs)).toFixed(3)} GiB`;
}

function kvFigures(derived: Profile, measured: Profile, bytesPerToken: number): KvFigures {
  const rows = measured.kvCache.measured;
  const ok = rows.filter((r) => r.kvCacheTokens !== null);
  const errs = ok.map((r) => {
    const d = kvCacheTokens(derived, r.maxLoras, r.maxLoraRank);
    return {
      pct: (100 * (d - r.kvCacheTokens!)) / r.kvCacheTokens!,
      gib: ((d - r.kvCacheTokens!) * bytesPerToken) / 2 ** 30,
    };
  });
  const startsAgree = rows.filter(
    (r) =>
      vllmStarts(derived, r.maxLoras, r.maxLoraRank) ===
      (r.kvCacheTokens !== null && r.kvCacheTokens >= measured.maxModelLen),
  ).length;
  return {
    rows: ok.length,
    within2: errs.filter((e) => Math.abs(e.pct) <= 2).length,
    maxAbsPct: Math.max(...errs.map((e) => Math.abs(e.pct))),
    maxAbsGiB: Math.max(...errs.map((e) => Math.abs(e.gib))),
    startupAgreement: startsAgree / rows.length,
    startupRows: rows.length,
  };
}

export interface ServingFigures {
  throughput: ErrorSummary;
  verdictAgreement: number;
  verdictRuns: number;
}

/** Throughput error and starvation-verdict agreement over the runs the real server completed. */
export function servingFigures(runs: readonly RunComparison[]): ServingFigures {
  const ok = runs.filter((r) => r.realOk);
  return {
    throughput: errorSummary(
      ok.map((r) => ({ real: r.realThroughput, predicted: r.twinThroughput })),
    ),
    verdictAgreement: ok.filter((r) => r.realStarving === r.twinStarving).length / ok.length,
    verdictRuns: ok.length,
  };
}

type LatencyFigures = Record<LatencyMetric, MetricFigures>;

/**
 * Latency of derived twins, leave one workload out: the correction is fitted on both models'
 * derived runs (so it has seen the held model's other workloads), each run predicted by a fit
 * without its own workload.
 */
function latencyByModel(runs: readonly RunComparison[]): Map<string, LatencyFigures> {
  const fit = fitPooled(runs, 'derived runs');
  const compared = runs.filter((r) => r.realOk && r.twinFeasible);
  const rows = fit.outOfFold.map((f, i) => ({
    ...f,
    realRatio: compared[i]!.realCompletionRatio,
    model: compared[i]!.model,
  }));
  return new Map(
    [...new Set(compared.map((r) => r.model))].map((m) => [
      m,
      figuresOf(rows.filter((r) => r.model === m)).keepsUp,
    ]),
  );
}

interface RecommendFigures {
  workloads: number;
  realStarving: number;
  notMeasured: number;
  meanLostPct: number;
  rows: string[];
}

/**
 * The verdict errors a derived profile's edge rule reads. Which way a derivation errs for a model
 * nobody measured is unknown (here the two folds err in opposite directions), so each run's error
 * counts both ways: the run as measured, and its mirror image, the twin overstating by as much as
 * it understated.
 */
const verdictRunsOf = (runs: readonly RunComparison[]): VerdictRun[] =>
  runs
    .filter((r) => r.realOk && r.twinFeasible)
    .flatMap((r) => {
      const twinRatio = Number(r.twinCompletionRatio.toFixed(5));
      const realRatio = Number(r.realCompletionRatio.toFixed(5));
      const workload = `${r.model}|${r.workload}`;
      return [
        { workload, twinRatio, realRatio },
        { workload, twinRatio, realRatio: Number((2 * twinRatio - realRatio).toFixed(5)) },
      ];
    });

/** The derived profile's own answers (method auto: the twin search, as it has no forest) against the real optimum. */
async function recommendFigures(
  dataDir: string,
  fold: Fold,
  verdicts: readonly VerdictRun[],
  latency: LatencyModel | undefined,
  threads: number | undefined,
): Promise<RecommendFigures> {
  const local = localRecommender(threads ? { threads } : {});
  const measuredId = profileOf(fold.held);
  const recommender = new Recommender({
    loadProfile: (id) => (id === measuredId ? fold.profile : loadProfile(id)),
    loadModel,
    simulate: (s, p, t) => local.cache.simulate(s, p, t),
    loadVerdictRuns: () => verdicts,
    loadLatencyModel: () => latency,
  });
  const rows: string[] = [];
  let realStarving = 0;
  let notMeasured = 0;
  const lost: number[] = [];
  try {
    for (const w of measuredWorkloads(dataDir).filter((x) => x.model === fold.held)) {
      const real = realOptimum(w.points);
      if (!real) continue;
      const response = await recommender.recommend({
        profile: measuredId,
        workload: { rates: w.rates, ranks: w.ranks },
        method: 'auto',
        search: { concurrent: w.concurrentGrid, parallel: w.parallelGrid },
        starvationThreshold: 0.1,
        objective: 'paper',
      });
      const rec = response.recommendation;
      const measured = w.points.find(
        (p) => p.c === rec.concurrentAdapters && p.p === rec.parallelAdapters,
      );
      if (!measured) notMeasured++;
      else if (measured.starving) realStarving++;
      const served = measured && !measured.starving ? measured.throughput : 0;
      if (measured) lost.push((100 * (real.throughput - served)) / real.throughput);
      rows.push(
        `| ${w.model} | ${w.workload} | ${real.c} x ${real.p} (${Math.round(real.throughput)}) | ${rec.concurrentAdapters} x ${rec.parallelAdapters}${measured ? (measured.starving ? ' (starves)' : ` (${Math.round(measured.throughput)})`) : ' (not measured)'} |`,
      );
    }
  } finally {
    await local.close();
  }
  return {
    workloads: rows.length,
    realStarving,
    notMeasured,
    meanLostPct: lost.reduce((a, b) => a + b, 0) / Math.max(1, lost.length),
    rows,
  };
}

function folds(catalog: DeriveCatalog): Fold[] {
  const measured = MODELS.map((m) => loadProfile(profileOf(m)));
  const one = (held: string, fitOn: string[], outOfFold: boolean): Fold => ({
    held,
    fitOn,
    outOfFold,
    profile: derive(
      {
        gpu: 'h100-64gb',
        model: held,
        fitOn: fitOn.map(profileOf),
        flags: { maxModelLen: loadProfile(profileOf(held)).maxModelLen },
      },
      catalog,
      measured,
    ),
  });
  return [
    one('qwen-2.5-7b-instruct', ['llama-3.1-8b-instruct'], true),
    one('llama-3.1-8b-instruct', ['qwen-2.5-7b-instruct'], true),
    one('llama-3.1-8b-instruct', [...MODELS], false),
    one('qwen-2.5-7b-instruct', [...MODELS], false),
  ];
}

/** A derived profile records the model shape it was derived for: the account's own KV bytes. */
const kvBytesPerTokenOf = (p: Profile) => kvBytesPerToken(p.derivation?.model as ModelShape);

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      data: { type: 'string' },
      out: { type: 'string' },
      threads: { type: 'string' },
      // Simulations of an earlier run (JSON), to redo the report without simulating again.
      cache: { type: 'string' },
    },
  });
  const dataDir = resolve(values.data ?? DEFAULT_DATA_DIR);
  const outDir = resolve(values.out ?? join(PACKAGE_ROOT, 'docs', 'validation'));
  const threads = values.threads ? Number(values.threads) : undefined;
  // The derivation's catalogs without the expected error this run is about to measure.
  const catalog: DeriveCatalog = { ...readDeriveCatalog(MODELS_DIR), expectedError: undefined };
  const all = folds(catalog);
  const comparisons = new Map<Fold, RunComparison[]>();
  const cached =
    values.cache && existsSync(values.cache)
      ? (JSON.parse(readFileSync(values.cache, 'utf8')) as Record<string, RunComparison[]>)
      : {};
  for (const fold of all) {
    const id = profileOf(fold.held);
    const runs =
      cached[fold.profile.id] ??
      (await compareRuns(dataDir, threads, fold.held, new Map([[id, fold.profile]])));
    comparisons.set(fold, runs);
    process.stderr.write(
      `derived ${fold.held} from ${fold.fitOn.join('+')}: ${runs.length} runs\n`,
    );
  }
  if (values.cache)
    writeFileSync(
      values.cache,
      JSON.stringify(Object.fromEntries(all.map((f) => [f.profile.id, comparisons.get(f)]))),
    );
  const source = `${relative(PACKAGE_ROOT, dataDir)}/validation_runs.csv, profiles derived leave one model out (npm run validate:derived)`;
  const calibrated = readComparisons(join(PACKAGE_ROOT, 'docs', 'validation', 'twin-runs.csv'));
  const outOfFold = all.filter((f) => f.outOfFold);
  // A fold's edge rule and latency model come from the other fold only: nothing of the held model.
  const otherOf = (f: Fold) => outOfFold.find((o) => o.held !== f.held)!;
  const relabel = (runs: readonly RunComparison[]) =>
    runs.map((r) => ({ ...r, workload: `${r.model}|${r.workload}`, model: 'derived' }));
  const latencyOf = (runs: readonly RunComparison[]) =>
    fitPooled(relabel(runs), source).models[profileOf('derived')];
  const sections: string[] = [];
  const summary: Array<{
    fold: Fold;
    kv: KvFigures;
    serving: ServingFigures;
    latency: LatencyFigures;
    rec: RecommendFigures;
  }> = [];
  const pooledOutOfFold = outOfFold.flatMap((f) => comparisons.get(f)!);
  const pooledInSample = all.filter((f) => !f.outOfFold).flatMap((f) => comparisons.get(f)!);
  const latencyOutOfFold = latencyByModel(pooledOutOfFold);
  const latencyInSample = latencyByModel(pooledInSample);
  // What derived profiles answer with: one correction and intervals for all of them.
  const derivedLatency = latencyOf(pooledOutOfFold);
  for (const fold of all) {
    const runs = comparisons.get(fold)!;
    const other = comparisons.get(otherOf(fold))!;
    const measured = loadProfile(profileOf(fold.held));
    const verdicts = verdictRunsOf(fold.outOfFold ? other : [...other, ...runs]);
    const rec = await recommendFigures(dataDir, fold, verdicts, derivedLatency, threads);
    summary.push({
      fold,
      kv: kvFigures(fold.profile, measured, kvBytesPerTokenOf(fold.profile)),
      serving: servingFigures(runs),
      latency: (fold.outOfFold ? latencyOutOfFold : latencyInSample).get(fold.held)!,
      rec,
    });
    sections.push(
      `### ${fold.held}, factors from ${fold.fitOn.join(' + ')}${fold.outOfFold ? ' (out of fold)' : ' (in sample)'}\n\n| measured optimum | derived answer (real throughput) |\n| --- | --- |\n${rec.rows.map((r) => `| ${r.split(' | ').slice(2).join(' | ')}`).join('\n')}\n`,
    );
  }
  const calibratedServing = MODELS.map((m) =>
    servingFigures(calibrated.filter((r) => r.model === m)),
  );

  // What derived profiles answer with: the out-of-fold errors, pooled over both folds.
  const oof = summary.filter((s) => s.fold.outOfFold);
  const worst = (f: (s: (typeof oof)[number]) => number) => Math.max(...oof.map(f));
  const expectedError = {
    throughputMapePct: Number(worst((s) => s.serving.throughput.mape).toFixed(2)),
    verdictDisagreementPct: Number(worst((s) => 100 * (1 - s.serving.verdictAgreement)).toFixed(2)),
    kvCacheMaxAbsPct: Number(worst((s) => s.kv.maxAbsPct).toFixed(2)),
    itlP99MapePct: Number(worst((s) => s.latency.itlP99.mape).toFixed(2)),
    ttftP99MapePct: Number(worst((s) => s.latency.ttftP99.mape).toFixed(2)),
  };
  const pooledRuns = pooledOutOfFold;
  const write = (file: string, body: unknown) => {
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, `${JSON.stringify(body, null, 1)}\n`);
  };
  write(join(MODELS_DIR, 'derived', 'expected-error.json'), {
    about:
      'Out-of-fold errors of profiles derived leave one model out on the measured H100 (the worse of the two folds); quoted in every answer on a derived profile.',
    source,
    twinVersion: TWIN_VERSION,
    errors: expectedError,
  });
  const verdictFile: VerdictRuns = {
    profile: 'derived',
    twinVersion: TWIN_VERSION,
    source,
    runs: verdictRunsOf(pooledRuns),
  };
  write(derivedVerdictsPath(), verdictFile);
  write(derivedLatencyPath(), derivedLatency);

  const row = (s: (typeof summary)[number]) =>
    `| ${s.fold.held} | ${s.fold.fitOn.join(' + ')} | ${s.fold.outOfFold ? 'out of fold' : 'in sample'} | ${s.kv.within2}/${s.kv.rows} (max ${pct(s.kv.maxAbsPct, 2)}, ${s.kv.maxAbsGiB.toFixed(2)} GiB) | ${pct(100 * s.kv.startupAgreement)} of ${s.kv.startupRows} | ${pct(s.serving.throughput.mape, 2)} | ${pct(100 * s.serving.verdictAgreement)} of ${s.serving.verdictRuns} | ${s.rec.realStarving} of ${s.rec.workloads}${s.rec.notMeasured ? ` (${s.rec.notMeasured} not measured)` : ''} | ${pct(s.rec.meanLostPct, 1)} |`;
  const latRow = (s: (typeof summary)[number]) =>
    `| ${s.fold.held} | ${s.fold.fitOn.join(' + ')} | ${LATENCY_METRICS.map((m) => `${pct(s.latency[m].mape)} (twin ${pct(s.latency[m].twinMape)}), in ${pct(100 * s.latency[m].coverage, 0)}, under ${pct(100 * s.latency[m].sloCoverage, 0)}`).join(' | ')} |`;
  const calibratedLatency = latencyByModel(calibrated);
  const calibratedLatRow = (model: string) => {
    const f = calibratedLatency.get(model)!;
    return `| ${model} | calibrated profile | ${LATENCY_METRICS.map((m) => `${pct(f[m].mape)} (twin ${pct(f[m].twinMape)}), in ${pct(100 * f[m].coverage, 0)}, under ${pct(100 * f[m].sloCoverage, 0)}`).join(' | ')} |`;
  };
  const factorsOf = (p: Profile) => JSON.stringify((p.derivation as { factors: unknown }).factors);
  const report = `# Derived profiles, validated leave one model out

Command: \`npm run validate:derived\` (${all.length} derivations, each simulated over every real run of its model; writes this file,
\`models/derived/expected-error.json\`, \`models/verdicts/derived.json\` and \`models/latency/derived.json\`).

A derived profile is built from a GPU datasheet (\`models/gpus/catalog.json\`) and a Hugging Face
\`config.json\` (\`models/configs/\`): memory by vLLM 0.8.5's own accounting, each step-time term as
the bytes or FLOPs of its work on that GPU times an achieved-fraction factor (src/derive/). Here the
factors are learned from **one** measured model and the **other** model's H100 profile is derived,
then compared with that model's real runs (${relative(PACKAGE_ROOT, dataDir)}). The in-sample rows
learn from both models, the held one included: the distance between them and the calibrated
profile's own figures is what measuring is worth.

## Memory, serving and recommendations

| model | factors from | split | KV tokens within 2% (worst) | start-up verdicts | throughput MAPE | starvation verdicts agree | recommended pairs that really starve | mean throughput lost vs real optimum |
| --- | --- | --- | --- | --- | --- | --- | --- | --- |
${summary.map(row).join('\n')}
| llama-3.1-8b-instruct | calibrated profile | (validate:twin) | measured rows | | ${pct(calibratedServing[0]!.throughput.mape, 2)} | ${pct(100 * calibratedServing[0]!.verdictAgreement)} | | |
| qwen-2.5-7b-instruct | calibrated profile | (validate:twin) | measured rows | | ${pct(calibratedServing[1]!.throughput.mape, 2)} | ${pct(100 * calibratedServing[1]!.verdictAgreement)} | | |

Targets, out of fold: KV tokens within 2% on every measured row; throughput MAPE ≤ 6%; verdict
agreement ≥ 95%; no recommended pair that really starves; mean throughput lost ≤ 3%. The
recommendations are method \`auto\` on the derived profile, which has no forest, so the twin search
answers; its edge rule reads the other fold's derived verdict errors only.

## Latency through the latency model

The latency correction and its intervals are fitted on the derived twins' runs of both models and
checked leave one workload out (each run predicted by a fit without its workload), as
validate:twin checks the calibrated ones. The correction has therefore seen the held model's other
workloads: the step-time terms are out of fold, the latency correction only out of workload. Each
cell: MAPE of the corrected figure (the raw twin's in brackets), share of real values inside
\`[lowMs, highMs]\` (aimed at 90%), share under \`sloMs\` (promised 90%).

| model | factors from | p50 TTFT | p99 TTFT | p50 ITL | p99 ITL |
| --- | --- | --- | --- | --- | --- |
${summary.map(latRow).join('\n')}
${MODELS.map(calibratedLatRow).join('\n')}

## The derived answers, workload by workload

${sections.join('\n')}
## Factors learned

${all.map((f) => `- ${f.held} from ${f.fitOn.join(' + ')}: \`${factorsOf(f.profile)}\``).join('\n')}

## What this validation cannot show

- Two models on one GPU test the transfer **between models**, not between GPUs. Every factor was
  learned on the H100 64 GB, whose HBM bandwidth is itself estimated (models/gpus/catalog.json);
  an A100's or an L40S's derived profile rests on the assumption that an achieved fraction of peak
  carries over between GPU generations, which nothing here measures. The expected error quoted in
  answers on other GPUs is therefore a floor, not a measurement.
- With two models, each fold learns from a single model: one ratio per term. Terms whose fits
  trade off against each other in the calibrated profiles (the step intercept against the
  per-sequence cost, the LoRA intercept against its per-token costs) are wrong one by one by far
  more than the step time they add up to; the table above measures the sum.
- The KV cache follows vLLM's accounting through PyTorch's caching allocator
  (src/derive/allocator.ts, residency.ts): the LoRA slot buffers leave gaps in the allocator's
  segments that vLLM counts as non-torch memory, uneven in the slot count and up to 0.93 GiB on the
  measured rows. That replay is a model of torch 2.6's allocator at its default settings; another
  torch version or \`PYTORCH_CUDA_ALLOC_CONF\` changes the gaps, and nothing here measures that.
- What the account leaves unexplained is flat within each model and is learned out of fold as the
  non-torch remainder (\`otherGiB\` above: ${otherSpread(all)}). The two models' remainders differ by
  that much; whether it is CUDA's context or the sampler's bytes per logit (fixed at 14 from vLLM's
  sampling code path, src/derive/memory.ts) that differs cannot be told apart with two models on
  one GPU.
`;
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, 'derived.md'), report);
  for (const s of summary)
    process.stdout.write(
      `${s.fold.held} from ${s.fold.fitOn.join('+')}: KV ${s.kv.within2}/${s.kv.rows} within 2% (max ${pct(s.kv.maxAbsPct, 2)}), throughput MAPE ${pct(s.serving.throughput.mape, 2)}, verdicts ${pct(100 * s.serving.verdictAgreement)}, starving recs ${s.rec.realStarving}/${s.rec.workloads}, lost ${pct(s.rec.meanLostPct)}\n`,
    );
  process.stdout.write(`wrote ${join(outDir, 'derived.md')}\n`);
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].replace(/^.*\/dist\//, 'dist/'))) {
  main().catch((e: unknown) => {
    process.stderr.write(
      `validate:derived: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`,
    );
    process.exitCode = 1;
  });
}
