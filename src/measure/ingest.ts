import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { MeasureInputError, readNpyFloat64 } from './npy.js';

/** What a benchmark client reports for one run: vLLM's benchmark_serving summary fields. */
export interface BenchSummary {
  successfulRequests: number;
  durationSeconds: number;
  totalInputTokens: number;
  totalGeneratedTokens: number;
  requestThroughput: number;
  inputTokensPerSecond: number;
  outputTokensPerSecond: number;
  ttftMs: { mean: number; median: number; p99: number };
  tpotMs: { mean: number; median: number; p99: number };
  itlMs: { mean: number; median: number; p99: number };
}

/** The server and client flags a run was launched with. */
export interface RunFlags {
  maxLoras: number;
  maxCpuLoras: number;
  maxLoraRank: number;
  maxNumSeqs: number;
  maxNumBatchedTokens: number;
  gpuMemoryUtilization: number;
  adapterRates: number[];
  /** Ranks of the adapters served (the dummy or named LoRA modules' ranks). */
  adapterRanks: number[];
  totalTimeSeconds: number;
}

/** The metrics scraped from the server's /metrics during the run. */
export interface MetricsSeries {
  time: Float64Array;
  numRunning: Float64Array;
  numWaiting: Float64Array;
  numPreempted: Float64Array;
  finished: Float64Array;
  gpuCacheUsage: Float64Array;
  promptTokens: Float64Array;
  generationTokens: Float64Array;
}

export type RunFailure =
  'kv_cache_insufficient' | 'cuda_oom' | 'slurm_cancelled' | 'slurm_time_limit' | 'no_result';

export interface IngestedRun {
  dir: string;
  flags: RunFlags;
  summary?: BenchSummary;
  failure?: RunFailure;
  /** The KV cache vLLM reported it had at a failed start, GiB. */
  availableKvCacheGiBAtFailure?: number;
  metrics?: MetricsSeries;
}

const SUMMARY_FIELDS: Array<[RegExp, (s: BenchSummary, v: number) => void]> = [
  [/^Successful requests:\s+(\S+)/, (s, v) => (s.successfulRequests = v)],
  [/^Benchmark duration \(s\):\s+(\S+)/, (s, v) => (s.durationSeconds = v)],
  [/^Total input tokens:\s+(\S+)/, (s, v) => (s.totalInputTokens = v)],
  [/^Total generated tokens:\s+(\S+)/, (s, v) => (s.totalGeneratedTokens = v)],
  [/^Request throughput \(req\/s\):\s+(\S+)/, (s, v) => (s.requestThroughput = v)],
  [/^Input token throughput \(tok\/s\):\s+(\S+)/, (s, v) => (s.inputTokensPerSecond = v)],
  [/^Output token throughput \(tok\/s\):\s+(\S+)/, (s, v) => (s.outputTokensPerSecond = v)],
  [/^Mean TTFT \(ms\):\s+(\S+)/, (s, v) => (s.ttftMs.mean = v)],
  [/^Median TTFT \(ms\):\s+(\S+)/, (s, v) => (s.ttftMs.median = v)],
  [/^P99 TTFT \(ms\):\s+(\S+)/, (s, v) => (s.ttftMs.p99 = v)],
  [/^Mean TPOT \(ms\):\s+(\S+)/, (s, v) => (s.tpotMs.mean = v)],
  [/^Median TPOT \(ms\):\s+(\S+)/, (s, v) => (s.tpotMs.median = v)],
  [/^P99 TPOT \(ms\):\s+(\S+)/, (s, v) => (s.tpotMs.p99 = v)],
  [/^Mean ITL \(ms\):\s+(\S+)/, (s, v) => (s.itlMs.mean = v)],
  [/^Median ITL \(ms\):\s+(\S+)/, (s, v) => (s.itlMs.median = v)],
  [/^P99 ITL \(ms\):\s+(\S+)/, (s, v) => (s.itlMs.p99 = v)],
];

/**
 * The result block vLLM's benchmark client prints ("===== Serving Benchmark ... Result ====="),
 * as benchmark_serving.py / `vllm bench serve` lays it out; undefined when there is none.
 */
export function parseBenchSummary(text: string, file: string): BenchSummary | undefined {
  const lines = text.split('\n');
  const start = lines.findIndex((l) => /^=+ Serving Benchmark .*Result =+/.test(l.trim()));
  if (start < 0) return undefined;
  const s: BenchSummary = {
    successfulRequests: NaN,
    durationSeconds: NaN,
    totalInputTokens: NaN,
    totalGeneratedTokens: NaN,
    requestThroughput: NaN,
    inputTokensPerSecond: NaN,
    outputTokensPerSecond: NaN,
    ttftMs: { mean: NaN, median: NaN, p99: NaN },
    tpotMs: { mean: NaN, median: NaN, p99: NaN },
    itlMs: { mean: NaN, median: NaN, p99: NaN },
  };
  for (let i = start + 1; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (/^=+$/.test(line)) break;
    for (const [re, set] of SUMMARY_FIELDS) {
      const m = re.exec(line);
      if (!m) continue;
      const v = Number(m[1]);
      if (!Number.isFinite(v)) throw new MeasureInputError(file, `not a number: "${m[1]}"`, i + 1);
      set(s, v);
    }
  }
  const missing = (
    ['successfulRequests', 'durationSeconds', 'totalInputTokens', 'totalGeneratedTokens'] as const
  ).filter((k) => Number.isNaN(s[k]));
  if (missing.length > 0)
    throw new MeasureInputError(file, `result block lacks ${missing.join(', ')}`, start + 1);
  return s;
}

/**
 * The result file of `vllm bench serve --save-result [--save-detailed]` (vllm/benchmarks/serve.py):
 * the aggregate fields, read into the same summary. The per-request arrays (ttfts, itls,
 * input_lens, output_lens) are returned as they are when present.
 */
export function parseBenchResultJson(
  text: string,
  file: string,
): {
  summary: BenchSummary;
  requests?: { ttftsS: number[]; itlsS: number[][]; inputLens: number[]; outputLens: number[] };
} {
  let r: Record<string, unknown>;
  try {
    r = JSON.parse(text) as Record<string, unknown>;
  } catch (e) {
    throw new MeasureInputError(file, `not valid JSON (${(e as Error).message})`);
  }
  const n = (k: string): number => {
    const v = r[k];
    if (typeof v !== 'number')
      throw new MeasureInputError(file, `field "${k}" is missing or not a number`);
    return v;
  };
  const opt = (k: string) => (typeof r[k] === 'number' ? (r[k] as number) : NaN);
  const duration = n('duration');
  const summary: BenchSummary = {
    successfulRequests: n('completed'),
    durationSeconds: duration,
    totalInputTokens: n('total_input_tokens'),
    totalGeneratedTokens: n('total_output_tokens'),
    requestThroughput: n('request_throughput'),
    inputTokensPerSecond: n('total_input_tokens') / duration,
    outputTokensPerSecond: n('output_throughput'),
    ttftMs: { mean: opt('mean_ttft_ms'), median: opt('median_ttft_ms'), p99: opt('p99_ttft_ms') },
    tpotMs: { mean: opt('mean_tpot_ms'), median: opt('median_tpot_ms'), p99: opt('p99_tpot_ms') },
    itlMs: { mean: opt('mean_itl_ms'), median: opt('median_itl_ms'), p99: opt('p99_itl_ms') },
  };
  const arrays = ['ttfts', 'itls', 'input_lens', 'output_lens'].every((k) => Array.isArray(r[k]));
  return arrays
    ? {
        summary,
        requests: {
          ttftsS: r.ttfts as number[],
          itlsS: r.itls as number[][],
          inputLens: r.input_lens as number[],
          outputLens: r.output_lens as number[],
        },
      }
    : { summary };
}

/** A `--flag=value` or `--flag value` (quoted or not) in a command line. */
function flagValue(text: string, flag: string): string | undefined {
  const re = new RegExp(`--${flag}(?:=|\\s+)(?:"([^"]*)"|'([^']*)'|([^\\s'"]+))`);
  const m = re.exec(text);
  return m ? (m[1] ?? m[2] ?? m[3]) : undefined;
}

/** Ranks named by the served adapters' paths (`..._rank_16/`, `dummy-r16-3`), ascending. */
function adapterRanksOf(text: string): number[] {
  const modules = flagValue(text, 'dummy-lora-modules') ?? flagValue(text, 'lora-modules') ?? '';
  const ranks = [...modules.matchAll(/rank_?(\d+)|-r(\d+)-/g)].map((m) => Number(m[1] ?? m[2]));
  return [...new Set(ranks)].sort((a, b) => a - b);
}

/** The `vllm serve` flags and the client's rates and window from a launcher script. */
export function parseLauncher(text: string, file: string): RunFlags {
  // The server's flags sit inside --server-args='...', whose own values are quoted again: they
  // are read from the whole script, their names being distinct from the client's.
  const server = text;
  const need = (flag: string, where: string): number => {
    const v = flagValue(where, flag);
    const n = v === undefined ? NaN : Number(v);
    if (!Number.isFinite(n)) throw new MeasureInputError(file, `no numeric --${flag}`);
    return n;
  };
  const maxLoras = need('max-loras', server);
  const rates = flagValue(text, 'adapter-rates');
  return {
    maxLoras,
    maxCpuLoras: flagValue(server, 'max-cpu-loras') ? need('max-cpu-loras', server) : maxLoras,
    maxLoraRank: need('max-lora-rank', server),
    maxNumSeqs: flagValue(server, 'max-num-seqs') ? need('max-num-seqs', server) : 256,
    // vLLM 0.8.5's V1 default for the OpenAI server when the flag is absent.
    maxNumBatchedTokens: flagValue(server, 'max-num-batched-tokens')
      ? need('max-num-batched-tokens', server)
      : 2048,
    gpuMemoryUtilization: flagValue(server, 'gpu-memory-utilization')
      ? need('gpu-memory-utilization', server)
      : 0.9,
    adapterRates: rates ? rates.trim().split(/\s+/).map(Number) : [],
    adapterRanks: adapterRanksOf(text),
    totalTimeSeconds: flagValue(text, 'total-time') ? need('total-time', text) : NaN,
  };
}

const SERIES: Array<[keyof MetricsSeries, string]> = [
  ['time', 'time'],
  ['numRunning', 'num_running'],
  ['numWaiting', 'num_waiting'],
  ['numPreempted', 'num_preempted'],
  ['finished', 'finished'],
  ['gpuCacheUsage', 'gpu_cache_usage_perc'],
  ['promptTokens', 'processed_tokens_prompt'],
  ['generationTokens', 'processed_tokens_token'],
];

/** Why a run gave no result, from the server's and the job's error logs. */
function failureOf(dir: string): { failure: RunFailure; availableGiB?: number } {
  const read = (f: string) => (existsSync(join(dir, f)) ? readFileSync(join(dir, f), 'utf8') : '');
  const server = read('server_err.log') + read('server_out.log');
  const kv = /larger than the available KV cache memory \(([\d.]+) GiB\)/.exec(server);
  if (kv) return { failure: 'kv_cache_insufficient', availableGiB: Number(kv[1]) };
  if (/No available memory for the cache blocks|insufficient.*KV cache/i.test(server))
    return { failure: 'kv_cache_insufficient' };
  if (/CUDA out of memory|OutOfMemoryError/.test(server)) return { failure: 'cuda_oom' };
  const job = readdirSync(dir)
    .filter((f) => /^log_.*\.err$/.test(f))
    .map(read)
    .join('\n');
  if (/CANCELLED.*DUE TO TIME LIMIT/.test(job)) return { failure: 'slurm_time_limit' };
  if (/CANCELLED/.test(job)) return { failure: 'slurm_cancelled' };
  return { failure: 'no_result' };
}

/**
 * One run folder as a real vLLM run leaves it: launcher.sh (flags), the client's log_*.out
 * (result block), server logs (start-up failures) and the metrics checker's *.npy series.
 */
export function ingestRun(dir: string): IngestedRun {
  if (!existsSync(dir) || !statSync(dir).isDirectory())
    throw new MeasureInputError(dir, 'not a run folder');
  const launcher = join(dir, 'launcher.sh');
  if (!existsSync(launcher))
    throw new MeasureInputError(launcher, 'missing: the run folder has no launcher.sh');
  const flags = parseLauncher(readFileSync(launcher, 'utf8'), launcher);
  const outs = readdirSync(dir)
    .filter((f) => /^log_.*\.out$/.test(f))
    .sort();
  let summary: BenchSummary | undefined;
  for (const f of outs)
    summary ??= parseBenchSummary(readFileSync(join(dir, f), 'utf8'), join(dir, f));
  const run: IngestedRun = { dir, flags };
  if (summary) run.summary = summary;
  else {
    const { failure, availableGiB } = failureOf(dir);
    run.failure = failure;
    if (availableGiB !== undefined) run.availableKvCacheGiBAtFailure = availableGiB;
  }
  if (SERIES.every(([, name]) => existsSync(join(dir, `${name}.npy`)))) {
    const series = Object.fromEntries(
      SERIES.map(([key, name]) => {
        const file = join(dir, `${name}.npy`);
        return [key, readNpyFloat64(readFileSync(file), file)];
      }),
    ) as unknown as MetricsSeries;
    // A run cut short (cancelled while the checker wrote) can leave one series a sample longer
    // than another: each is kept whole, as each figure reads one series.
    run.metrics = series;
  }
  return run;
}

/** Every run folder under a root (folders holding a launcher.sh), sorted. */
export function runFolders(root: string): string[] {
  if (!existsSync(root)) throw new MeasureInputError(root, 'no such folder');
  const out: string[] = [];
  const walk = (d: string) => {
    if (existsSync(join(d, 'launcher.sh'))) out.push(d);
    else
      for (const e of readdirSync(d, { withFileTypes: true }))
        if (e.isDirectory()) walk(join(d, e.name));
  };
  walk(root);
  return out.sort();
}

/** The metrics figures validation_runs.csv derives from the series: maxima and final values. */
export function metricsFigures(m: MetricsSeries) {
  const max = (a: Float64Array) => a.reduce((x, y) => Math.max(x, y), 0);
  return {
    maxNumWaiting: max(m.numWaiting),
    maxNumRunning: max(m.numRunning),
    numPreemptedFinal: m.numPreempted.length > 0 ? m.numPreempted[m.numPreempted.length - 1]! : 0,
    maxGpuCacheUsage: max(m.gpuCacheUsage),
  };
}
