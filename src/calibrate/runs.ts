import { join } from 'node:path';
import { parseScenario } from '../runtime/scenario-runner.js';
import type { Scenario } from '../twin/index.js';
import { num, readCsv, type CsvRow } from './csv.js';

/** One real serving run of validation_runs.csv, with the scenario that reproduces it. */
export interface ServingRun {
  row: CsvRow;
  model: string;
  workload: string;
  run: string;
  ok: boolean;
  scenario: Scenario;
}

/**
 * The scenario a measured run corresponds to: same model, flags, per-adapter rates and ranks,
 * adapter count and window, and the measurements' client limit on requests in flight.
 */
export function scenarioForRun(row: CsvRow, gpu = 'h100-64gb', seed = 1): Scenario {
  const maxLoras = num(row, 'max_loras');
  const cpu = row.max_cpu_loras === '' ? maxLoras : num(row, 'max_cpu_loras');
  return parseScenario({
    profile: `${gpu}/${row.model}`,
    config: {
      maxLoras,
      maxCpuLoras: cpu,
      maxLoraRank: num(row, 'max_lora_rank'),
      maxNumBatchedTokens: num(row, 'max_num_batched_tokens') || 2048,
      maxNumSeqs: num(row, 'max_num_seqs'),
    },
    workload: {
      rates: row.adapter_rates!.trim().split(/\s+/).map(Number),
      ranks: row.adapter_ranks!.trim().split(/\s+/).map(Number),
      adapterCount: cpu,
      maxInFlightRequests: 'measurement',
    },
    durationSeconds: num(row, 'total_time_s'),
    seed,
  });
}

export function readServingRuns(dataDir: string, model?: string, gpu?: string): ServingRun[] {
  return readCsv(join(dataDir, 'validation_runs.csv'))
    .filter((r) => !model || r.model === model)
    .map((row) => ({
      row,
      model: row.model!,
      workload: row.workload_id!,
      run: row.run_id!,
      ok: row.parse_ok === 'True',
      scenario: scenarioForRun(row, gpu),
    }));
}
