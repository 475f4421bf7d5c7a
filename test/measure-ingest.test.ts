import { readFileSync, writeFileSync, cpSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readCsv } from '../src/calibrate/csv.js';
import {
  ingestRun,
  metricsFigures,
  parseBenchResultJson,
  parseBenchSummary,
  runFolders,
} from '../src/measure/ingest.js';
import { MeasureInputError, readNpyFloat64 } from '../src/measure/npy.js';
import { PACKAGE_ROOT } from '../src/profiles/store.js';
import { scratchDir } from './scratch.js';

const RAW = join(PACKAGE_ROOT, 'test', 'fixtures', 'raw');
const LIGHT = 'llama-3.1-8b-instruct/rank_16_rates_0.1_0.05_0.025';
const table = new Map(
  readCsv(
    join(PACKAGE_ROOT, 'models', 'measurements', 'vllm-0.8.5-h100', 'validation_runs.csv'),
  ).map((r) => [`${r.model}/${r.workload_id}/${r.run_id}`, r]),
);

describe('ingesting the raw files a real vLLM run leaves', () => {
  it("reads every fixture's throughput, latency and metrics as validation_runs.csv has them", () => {
    const folders = runFolders(RAW);
    expect(folders).toHaveLength(5);
    for (const dir of folders) {
      const key = dir.slice(RAW.length + 1);
      const row = table.get(key)!;
      const run = ingestRun(dir);
      expect(run.flags.maxLoras).toBe(Number(row.max_loras));
      expect(run.flags.maxCpuLoras).toBe(Number(row.max_cpu_loras));
      expect(run.summary !== undefined).toBe(row.parse_ok === 'True');
      if (run.summary) {
        expect(run.summary.inputTokensPerSecond + run.summary.outputTokensPerSecond).toBeCloseTo(
          Number(row.total_tok_s),
          2,
        );
        expect(run.summary.itlMs.p99).toBe(Number(row.p99_itl_ms));
        expect(run.summary.ttftMs.p99).toBe(Number(row.p99_ttft_ms));
      } else expect(run.failure).toBe(row.failure_reason);
      if (run.metrics) {
        const m = metricsFigures(run.metrics);
        expect(m.maxNumWaiting).toBe(Number(row.max_num_waiting));
        expect(m.maxGpuCacheUsage).toBeCloseTo(Number(row.max_gpu_cache_usage_perc), 4);
      }
    }
  });

  it('a run that starved, one that failed to start (no .npy) and one the cluster cancelled', () => {
    const starved = ingestRun(join(RAW, LIGHT, '_128_320_16_'));
    expect(
      starved.summary!.outputTokensPerSecond + starved.summary!.inputTokensPerSecond,
    ).toBeCloseTo(6662.55, 2);
    const failed = ingestRun(join(RAW, LIGHT, '_256_256_16_'));
    expect(failed.failure).toBe('kv_cache_insufficient');
    expect(failed.availableKvCacheGiBAtFailure).toBeGreaterThan(0);
    expect(failed.metrics).toBeUndefined();
    const cancelled = ingestRun(
      join(RAW, 'llama-3.1-8b-instruct/rank_32_rates_0.1_0.05_0.025/_16_256_32_'),
    );
    expect(cancelled.failure).toBe('slurm_cancelled');
    expect(cancelled.metrics!.time.length).toBeGreaterThan(1000);
  });
});

describe('bad input names the file and line, never a stack', () => {
  const dir = scratchDir('loraplan-ingest-');
  it('a missing folder, a launcher without flags, a truncated .npy', () => {
    expect(() => ingestRun(join(dir, 'nope'))).toThrow(/nope: not a run folder/);
    const run = join(dir, 'run');
    cpSync(join(RAW, LIGHT, '_128_128_16_'), run, { recursive: true });
    const npy = readFileSync(join(run, 'time.npy'));
    writeFileSync(join(run, 'time.npy'), npy.subarray(0, npy.length - 100));
    expect(() => ingestRun(run)).toThrow(/time\.npy: truncated: 1512 values announced/);
    writeFileSync(join(run, 'launcher.sh'), 'python3 benchmark.py --port=1\n');
    expect(() => ingestRun(run)).toThrow(/launcher\.sh: no numeric --max-loras/);
    expect(() => readNpyFloat64(Buffer.from('not numpy'), 'x.npy')).toThrow(MeasureInputError);
  });
  it('a result block with a value that is not a number, and a truncated bench result JSON', () => {
    const text = '===== Serving Benchmark Result =====\nSuccessful requests:   12x\n=====\n';
    expect(() => parseBenchSummary(text, 'log_1.out')).toThrow('log_1.out:2: not a number: "12x"');
    expect(() => parseBenchResultJson('{"duration": 3', 'result.json')).toThrow(
      /result\.json: not valid JSON/,
    );
    expect(() => parseBenchResultJson('{"duration": 3}', 'result.json')).toThrow(
      'result.json: field "completed" is missing or not a number',
    );
  });
});

describe("results of vLLM's own benchmark (vllm bench serve --save-result --save-detailed)", () => {
  it('reads the aggregate fields and the per-request arrays', () => {
    // The fields vllm/benchmarks/serve.py writes (result_json), two requests.
    const result = {
      duration: 10,
      completed: 2,
      total_input_tokens: 300,
      total_output_tokens: 40,
      request_throughput: 0.2,
      output_throughput: 4,
      total_token_throughput: 34,
      mean_ttft_ms: 50,
      median_ttft_ms: 50,
      p99_ttft_ms: 59.8,
      mean_tpot_ms: 12,
      median_tpot_ms: 12,
      p99_tpot_ms: 13,
      mean_itl_ms: 12,
      median_itl_ms: 12,
      p99_itl_ms: 14,
      input_lens: [100, 200],
      output_lens: [20, 20],
      ttfts: [0.04, 0.06],
      itls: [Array(19).fill(0.012), Array(19).fill(0.012)],
    };
    const { summary, requests } = parseBenchResultJson(JSON.stringify(result), 'r.json');
    expect(summary.successfulRequests).toBe(2);
    expect(summary.inputTokensPerSecond + summary.outputTokensPerSecond).toBe(34);
    expect(summary.itlMs.p99).toBe(14);
    expect(requests!.ttftsS).toEqual([0.04, 0.06]);
    expect(requests!.itlsS[0]).toHaveLength(19);
  });
});
