import { join } from 'node:path';
import { z } from 'zod';
import { PACKAGE_ROOT } from '../profiles/store.js';
import { median } from '../stats/index.js';
import { profileSchema, type Profile } from '../twin/profile.js';
import { num, readCsv, type CsvRow } from './csv.js';
import { fitLengthDistribution } from './lengths.js';
import { ols, type OlsFit } from '../stats/ols.js';

const lengthTargetsSchema = z.strictObject({
  mean: z.number().positive(),
  std: z.number().positive(),
  quartiles: z.tuple([z.number().positive(), z.number().positive()]),
  min: z.number().positive(),
  max: z.number().positive(),
});

/** What the CSV tables cannot say: identity, limits and request-length statistics. */
export const calibrationInputsSchema = z.strictObject({
  gpu: z.string(),
  model: z.string(),
  vllmVersion: z.string(),
  maxModelLen: z.number().int().positive(),
  blockSize: z.number().int().positive().default(16),
  preallocateBlocks: z.number().int().min(0).default(0),
  allowedLoraRanks: z.array(z.number().int().positive()),
  requestLengths: z.strictObject({
    prompt: lengthTargetsSchema,
    output: lengthTargetsSchema,
    maxTotalTokens: z.number().int().positive(),
    derivation: z.string(),
  }),
});
export type CalibrationInputs = z.infer<typeof calibrationInputsSchema>;

/** The measurement tables this project calibrates and validates on, kept in the repository. */
export const MEASUREMENTS_DIR = join(PACKAGE_ROOT, 'models', 'measurements', 'vllm-0.8.5-h100');

/** Paths of the tables, shaped like `models/measurements/vllm-0.8.5-h100/`. */
export interface CalibrationTables {
  kvCacheProfile: string;
  decodeStepLatency: string;
  prefillLatency: string;
  loraOverhead: string;
  adapterLoadTime: string;
  schedulerOverhead: string;
  validationRuns: string;
}

export function tablesIn(dataDir: string): CalibrationTables {
  const c = join(dataDir, 'calibration');
  return {
    kvCacheProfile: join(dataDir, 'kv_cache_profile.csv'),
    decodeStepLatency: join(c, 'decode_step_latency.csv'),
    prefillLatency: join(c, 'prefill_latency.csv'),
    loraOverhead: join(c, 'lora_overhead.csv'),
    adapterLoadTime: join(c, 'adapter_load_time.csv'),
    schedulerOverhead: join(c, 'scheduler_overhead.csv'),
    validationRuns: join(dataDir, 'validation_runs.csv'),
  };
}

const round = (v: number, digits = 6): number => Number(v.toPrecision(digits));
const summary = (f: OlsFit): Record<string, number> => ({
  n: f.n,
  r2: round(f.r2, 4),
  rmse: round(f.rmse, 4),
  looRmse: round(f.looRmse, 4),
  maxAbsPctError: round(f.maxAbsPctError, 3),
});

/**
 * The measurements' client failed requests once it ran out of ephemeral ports: its in-flight
 * limit is the median peak of waiting + running over heavily overloaded runs (of one model).
 */
export function measurementClientLimit(runs: readonly CsvRow[]): { limit: number; runs: number } {
  const overloaded = runs
    .filter((r) => r.parse_ok === 'True' && num(r, 'throughput_vs_ideal') < 0.5)
    .map((r) => num(r, 'max_num_waiting') + num(r, 'max_num_running'));
  if (overloaded.length === 0)
    throw new Error('no overloaded run (throughput_vs_ideal < 0.5) to read the client limit from');
  return { limit: Math.round(median(overloaded)), runs: overloaded.length };
}

function rowsFor(path: string, model: string, keep: (r: CsvRow) => boolean = () => true): CsvRow[] {
  const rows = readCsv(path).filter((r) => r.model === model && keep(r));
  if (rows.length === 0) throw new Error(`${path} has no usable rows for model ${model}`);
  return rows;
}

/**
 * Fits a profile from measurement tables. Every coefficient comes from a least-squares fit on
 * one table; `fit` in the result records each fit's quality so a reader can judge it.
 */
export function calibrate(inputs: CalibrationInputs, tables: CalibrationTables): Profile {
  const { model } = inputs;

  // KV capacity: linear in slots x rank (LoRA weights are carved out of the KV pool at start-up).
  const kvRows = rowsFor(tables.kvCacheProfile, model);
  const kvOk = kvRows.filter((r) => r.status === 'ok');
  const kvFit = ols(
    kvOk.map((r) => [num(r, 'max_loras') * num(r, 'max_lora_rank')]),
    kvOk.map((r) => num(r, 'kv_cache_tokens')),
  );

  // Base step time, without LoRA and without scheduler CPU time (modelled separately).
  // Decode runs: D = sequences decoded per step, P = prompt tokens per step, K = KV in use.
  const decode = rowsFor(
    tables.decodeStepLatency,
    model,
    (r) => r.n_steps !== '' && num(r, 'preemptions_in_window') === 0,
  );
  const prefill = rowsFor(tables.prefillLatency, model, (r) => r.n_steps !== '');
  const stepX: number[][] = [];
  const stepY: number[] = [];
  for (const r of decode) {
    stepX.push([
      num(r, 'output_tokens_per_step'),
      num(r, 'input_tokens_per_step'),
      num(r, 'mean_kv_tokens_used') / 1000,
    ]);
    stepY.push(num(r, 'mean_step_ms') - num(r, 'mean_sched_ms_per_step'));
  }
  for (const r of prefill) {
    // Prompt-only steps: every request is prefilled and done in one step, so the KV in use during
    // the step is about the step's prompt tokens plus each request's preallocated blocks.
    const tokens = num(r, 'input_tokens_per_step');
    const requests = num(r, 'output_tokens_per_step');
    stepX.push([
      0,
      tokens,
      (tokens + requests * inputs.preallocateBlocks * inputs.blockSize) / 1000,
    ]);
    stepY.push(num(r, 'mean_step_ms') - num(r, 'mean_sched_ms_per_step'));
  }
  const stepFit = ols(stepX, stepY);

  // LoRA compute, first estimate: extra ITL over the no-LoRA baseline, linear in distinct adapters,
  // measured at 300 slots only. The serving fit (serving-fit.ts) refines it on real serving runs.
  const lora = rowsFor(
    tables.loraOverhead,
    model,
    (r) => r.kind === 'lora' && (r.status ?? '').startsWith('ok'),
  );
  const loraFit = ols(
    lora.map((r) => [num(r, 'loras_in_batch_best')]),
    lora.map((r) => num(r, 'mean_itl_ms') - num(r, 'baseline_itl_ms')),
  );
  const loraSlots = num(lora[0]!, 'max_loras');

  // Scheduler CPU time: per running request from this model's own decode runs ...
  const schedRunFit = ols(
    decode.map((r) => [num(r, 'output_tokens_per_step')]),
    decode.map((r) => num(r, 'mean_sched_ms_per_step')),
  );
  // ... and per waiting request the FCFS scan visits, from the scheduler-overhead study. The scan
  // re-queues every request whose adapter cannot join the batch; with g = slots / adapters the
  // share of the queue it skips is about 1 - g.
  const schedRows = readCsv(tables.schedulerOverhead);
  const schedScanFit = ols(
    schedRows.map((r) => [
      num(r, 'avg_batch_size'),
      num(r, 'avg_waiting_queue') * (1 - num(r, 'gpu_div_cpu')),
    ]),
    schedRows.map((r) => num(r, 'scheduling_time_per_step_ms')),
  );

  // Adapter loads: the measured table, a linear fallback for other ranks, and disk reads.
  const loads = rowsFor(tables.adapterLoadTime, model);
  const loadFit = ols(
    loads.map((r) => [
      num(r, 'max_lora_rank'),
      num(r, 'adapter_rank') < num(r, 'max_lora_rank') ? 1 : 0,
    ]),
    loads.map((r) => num(r, 'mean_load_ms')),
  );
  const diskMs = loads.reduce((s, r) => s + num(r, 'disk_load_mean_ms'), 0) / loads.length;

  const client = measurementClientLimit(rowsFor(tables.validationRuns, model));

  const lengths = fitLengthDistribution(
    inputs.requestLengths.prompt,
    inputs.requestLengths.output,
    inputs.requestLengths.maxTotalTokens,
  );

  const profile: Profile = {
    schemaVersion: 1,
    id: `${inputs.gpu}/${model}`,
    gpu: inputs.gpu,
    model,
    vllmVersion: inputs.vllmVersion,
    maxModelLen: inputs.maxModelLen,
    blockSize: inputs.blockSize,
    preallocateBlocks: inputs.preallocateBlocks,
    allowedLoraRanks: inputs.allowedLoraRanks,
    kvCache: {
      intercept: round(kvFit.intercept, 8),
      perSlotRank: round(-kvFit.coefficients[0]!, 6),
      measured: kvRows.map((r) => ({
        maxLoras: num(r, 'max_loras'),
        maxLoraRank: num(r, 'max_lora_rank'),
        kvCacheTokens: r.status === 'ok' ? num(r, 'kv_cache_tokens') : null,
      })),
    },
    stepTime: {
      base: {
        intercept: round(stepFit.intercept),
        perDecodeSeq: round(stepFit.coefficients[0]!),
        perPrefillToken: round(stepFit.coefficients[1]!),
        perKvKiloToken: round(stepFit.coefficients[2]!),
      },
      lora: {
        intercept: 0,
        perSlot: round(loraFit.intercept / loraSlots),
        perAdapterInBatch: round(loraFit.coefficients[0]!),
        perBatchedToken: 0,
        perBatchedTokenSlot: 0,
      },
    },
    scheduler: {
      intercept: round(schedRunFit.intercept),
      perRunningRequest: round(schedRunFit.coefficients[0]!),
      perVisitedWaitingRequest: round(schedScanFit.coefficients[1]!),
    },
    adapterLoad: {
      cpuToGpuMs: loads.map((r) => ({
        maxLoraRank: num(r, 'max_lora_rank'),
        adapterRank: num(r, 'adapter_rank'),
        ms: round(num(r, 'mean_load_ms')),
      })),
      cpuToGpuFallback: {
        intercept: round(loadFit.intercept),
        perMaxLoraRank: round(loadFit.coefficients[0]!),
        paddedPenalty: round(loadFit.coefficients[1]!),
      },
      diskToCpuMs: round(diskMs),
    },
    requestLengths: lengths,
    measurementClientMaxInFlight: client.limit,
    fit: {
      kvCache: summary(kvFit),
      baseStep: summary(stepFit),
      loraOverheadTable: summary(loraFit),
      schedulerPerRunning: summary(schedRunFit),
      schedulerScan: summary(schedScanFit),
      adapterLoadFallback: summary(loadFit),
      clientMaxInFlightFromRuns: client.runs,
      requestLengthsDerivation: inputs.requestLengths.derivation,
    },
  };
  return profileSchema.parse(profile);
}
