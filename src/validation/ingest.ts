// Reads every raw run folder (launcher.sh, the client's log, server logs, the metrics checker's
// .npy series) with src/measure and checks each figure against validation_runs.csv, which was
// extracted from the same files by other code. Writes docs/validation/ingest.md.
// Usage: npm run validate:ingest -- --raw SHARED/data/vllm-0.8.5-h100/raw [--out DIR]
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, relative, resolve, sep } from 'node:path';
import { parseArgs } from 'node:util';
import { readCsv } from '../calibrate/csv.js';
import { ingestRun, metricsFigures, runFolders, type IngestedRun } from '../measure/ingest.js';
import { PACKAGE_ROOT } from '../profiles/store.js';
import { DEFAULT_DATA_DIR } from './twin.js';

/** A column of validation_runs.csv and how an ingested run gives it. */
const COLUMNS: Array<[string, (r: IngestedRun) => number | string | undefined]> = [
  ['max_loras', (r) => r.flags.maxLoras],
  ['max_cpu_loras', (r) => r.flags.maxCpuLoras],
  ['max_lora_rank', (r) => r.flags.maxLoraRank],
  ['max_num_seqs', (r) => r.flags.maxNumSeqs],
  ['total_time_s', (r) => r.flags.totalTimeSeconds],
  ['parse_ok', (r) => (r.summary ? 'True' : 'False')],
  ['failure_reason', (r) => r.failure ?? ''],
  ['successful_requests', (r) => r.summary?.successfulRequests],
  ['duration_s', (r) => r.summary?.durationSeconds],
  ['total_input_tokens', (r) => r.summary?.totalInputTokens],
  ['total_generated_tokens', (r) => r.summary?.totalGeneratedTokens],
  ['request_throughput', (r) => r.summary?.requestThroughput],
  ['input_tok_s', (r) => r.summary?.inputTokensPerSecond],
  ['output_tok_s', (r) => r.summary?.outputTokensPerSecond],
  [
    'total_tok_s',
    (r) => r.summary && r.summary.inputTokensPerSecond + r.summary.outputTokensPerSecond,
  ],
  ['mean_ttft_ms', (r) => r.summary?.ttftMs.mean],
  ['median_ttft_ms', (r) => r.summary?.ttftMs.median],
  ['p99_ttft_ms', (r) => r.summary?.ttftMs.p99],
  ['mean_tpot_ms', (r) => r.summary?.tpotMs.mean],
  ['median_tpot_ms', (r) => r.summary?.tpotMs.median],
  ['p99_tpot_ms', (r) => r.summary?.tpotMs.p99],
  ['mean_itl_ms', (r) => r.summary?.itlMs.mean],
  ['median_itl_ms', (r) => r.summary?.itlMs.median],
  ['p99_itl_ms', (r) => r.summary?.itlMs.p99],
  ['max_num_waiting', (r) => (r.metrics ? metricsFigures(r.metrics).maxNumWaiting : undefined)],
  ['max_num_running', (r) => (r.metrics ? metricsFigures(r.metrics).maxNumRunning : undefined)],
  [
    'num_preempted_final',
    (r) => (r.metrics ? metricsFigures(r.metrics).numPreemptedFinal : undefined),
  ],
  [
    'max_gpu_cache_usage_perc',
    (r) => (r.metrics ? metricsFigures(r.metrics).maxGpuCacheUsage : undefined),
  ],
];

/** Equal as the table prints it: numbers to the table's own digits, text as is. */
function agrees(table: string, ingested: number | string | undefined): boolean {
  if (ingested === undefined) return table === '';
  if (typeof ingested === 'string') return table === ingested;
  if (table === '') return false;
  const t = Number(table);
  const digits = table.includes('.') ? table.split('.')[1]!.length : 0;
  return Math.abs(t - ingested) <= 0.5 * 10 ** -digits + 1e-9 * Math.abs(t);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { raw: { type: 'string' }, data: { type: 'string' }, out: { type: 'string' } },
  });
  if (!values.raw)
    throw new Error(
      '--raw DIR is required (the raw run folders, e.g. SHARED/data/vllm-0.8.5-h100/raw)',
    );
  const raw = resolve(values.raw);
  const dataDir = resolve(values.data ?? DEFAULT_DATA_DIR);
  const outDir = resolve(values.out ?? join(PACKAGE_ROOT, 'docs', 'validation'));
  const table = new Map(
    readCsv(join(dataDir, 'validation_runs.csv')).map((r) => [
      `${r.model}/${r.workload_id}/${r.run_id}`,
      r,
    ]),
  );
  const folders = runFolders(raw);
  const mismatches: string[] = [];
  const perColumn = new Map<string, number>(COLUMNS.map(([c]) => [c, 0]));
  let compared = 0;
  let cells = 0;
  const started = performance.now();
  for (const dir of folders) {
    const key = relative(raw, dir).split(sep).join('/');
    const row = table.get(key);
    if (!row) {
      mismatches.push(`${key}: no row in validation_runs.csv`);
      continue;
    }
    const run = ingestRun(dir);
    compared++;
    for (const [column, of] of COLUMNS) {
      cells++;
      const value = of(run);
      if (!agrees(row[column] ?? '', value)) {
        perColumn.set(column, perColumn.get(column)! + 1);
        if (mismatches.length < 40)
          mismatches.push(`${key}: ${column} table ${row[column]} ingested ${String(value)}`);
      }
    }
  }
  const ms = performance.now() - started;
  const missing = [...table.keys()].filter(
    (k) => !folders.some((d) => relative(raw, d).split(sep).join('/') === k),
  );
  const wrong = [...perColumn.values()].reduce((a, b) => a + b, 0);
  const report = `# Ingesting real vLLM output

Command: \`npm run validate:ingest -- --raw ${relative(PACKAGE_ROOT, raw)}\`. Every run folder there
(launcher.sh with the exact \`vllm serve\` flags, the benchmark client's printed result block, the
server's error log, the metrics checker's \`.npy\` series) is read by \`src/measure/ingest.ts\` and
each figure compared with \`${relative(PACKAGE_ROOT, dataDir)}/validation_runs.csv\`, which other
code extracted from the same files.

- run folders read: ${compared} of ${table.size} table rows (${missing.length} rows without a folder), in ${(ms / 1000).toFixed(1)} s
- cells compared: ${cells}; disagreeing: **${wrong}**
- start-up failures named as the table names them (kv_cache_insufficient, slurm_cancelled, slurm_time_limit): ${perColumn.get('failure_reason') === 0 ? 'all' : `${perColumn.get('failure_reason')} differ`}

| column | runs that disagree |
| --- | --- |
${[...perColumn].map(([c, n]) => `| ${c} | ${n} |`).join('\n')}

${mismatches.length > 0 ? `First disagreements:\n\n${mismatches.map((m) => `- ${m}`).join('\n')}\n` : ''}
Numbers agree when they are equal to the digits the table prints. Not compared: the table's
derived columns (expected requests, completion and ideal throughput, which need the prompt pool)
and \`max_num_batched_tokens\` (the table reads it from server logs, most of which were too large to
publish; the launchers leave it at vLLM 0.8.5's default, 2048).
`;
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, 'ingest.md'), report);
  process.stdout.write(
    `${compared} runs, ${cells} cells, ${wrong} disagree; wrote ${join(outDir, 'ingest.md')}\n`,
  );
  if (wrong > 0) process.exitCode = 1;
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].replace(/^.*\/dist\//, 'dist/'))) {
  main().catch((e: unknown) => {
    process.stderr.write(`validate:ingest: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = 1;
  });
}
