import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { existsSync } from 'node:fs';
import { calibrate, calibrationInputsSchema, tablesIn } from '../calibrate/calibrate.js';
import { readServingRuns } from '../calibrate/runs.js';
import { fitLoraOnServingRuns } from '../calibrate/serving-fit.js';
import { SimulationPool } from '../runtime/pool.js';
import { loadProfile, measuredProfiles, PACKAGE_ROOT, PROFILES_DIR } from '../profiles/store.js';
import { derive, readDeriveCatalog } from '../derive/index.js';
import { calibrateFromRuns } from '../measure/calibrate-runs.js';
import type { Profile } from '../twin/profile.js';
import { InputError, fieldIssues } from '../input/errors.js';
import { parseOptions, UsageError } from './options.js';

const USAGE = `usage: loraplan calibrate --data DIR --inputs FILE [--model M] [--out DIR]
       loraplan calibrate --runs DIR --gpu G --model M [--start PROFILE] [--out FILE]

Fits a twin profile from measurement tables shaped like models/measurements/vllm-0.8.5-h100/
(kv_cache_profile.csv, validation_runs.csv and calibration/*.csv) and an inputs file giving what
tables cannot (model identity, max_model_len, request-length statistics). When
validation_runs.csv holds runs of the model, the LoRA step cost is then fitted on them (a few
rounds of twin simulations of every run: minutes). Writes
<out>/<gpu>/<model>.json (default out: models/profiles) and prints each fit's quality.

--runs: calibrates from recorded run folders, starting from the derived profile of --gpu and
--model (or --start PROFILE). What run.sh recorded (plan.json beside runs/) refits the KV cache
from vLLM's start-up logs, the base step terms and a scale on the LoRA terms from the closed
loads' token times; raw vLLM folders (launcher, the client's result block, server logs, metrics)
refit the LoRA step cost on their serving runs. Prints what was refitted and what stays. Writes
an evidence "calibrated" profile (default: models/profiles/<gpu>/<model>@<hash>.json).`;

export async function calibrateCommand(argv: string[]): Promise<number> {
  const { values } = parseOptions(argv, {
    data: { type: 'string' },
    inputs: { type: 'string' },
    model: { type: 'string' },
    out: { type: 'string' },
    runs: { type: 'string' },
    gpu: { type: 'string' },
    start: { type: 'string' },
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (values.runs) return calibrateRuns(values.runs, values);
  if (!values.data || !values.inputs)
    throw new UsageError(`--data and --inputs are required\n${USAGE}`);
  const all = JSON.parse(readFileSync(values.inputs, 'utf8')) as Record<string, unknown>;
  const models = values.model ? [values.model] : Object.keys(all);
  const pool = new SimulationPool();
  try {
    for (const model of models) {
      if (!(model in all))
        throw new UsageError(`${values.inputs} has no entry for model "${model}"`);
      const parsed = calibrationInputsSchema.safeParse(all[model]);
      if (!parsed.success) throw new InputError(fieldIssues(parsed.error, [model]));
      const tables = tablesIn(values.data);
      let profile = calibrate(parsed.data, tables);
      const runs = existsSync(tables.validationRuns)
        ? readServingRuns(values.data, model, parsed.data.gpu)
        : [];
      if (runs.some((r) => r.ok)) {
        const fitted = await fitLoraOnServingRuns(
          profile,
          runs,
          (tasks) => Promise.all(tasks.map((t) => pool.run({ ...t, includeStepStats: true }))),
          3,
          (round, mape) =>
            process.stderr.write(
              `  ${model}: serving fit round ${round + 1}, ITL MAPE before refit ${mape.toFixed(1)}%\n`,
            ),
        );
        profile = {
          ...fitted.profile,
          fit: { ...fitted.profile.fit, loraServingFit: fitted.report },
        };
      }
      const path = join(values.out ?? PROFILES_DIR, `${profile.id}.json`);
      mkdirSync(dirname(path), { recursive: true });
      writeFileSync(path, `${JSON.stringify(profile, null, 2)}\n`);
      process.stdout.write(`${profile.id} -> ${path}\n`);
      for (const [name, quality] of Object.entries(profile.fit)) {
        if (typeof quality === 'object' && quality !== null) {
          const q = Object.entries(quality)
            .map(([k, v]) => `${k}=${String(v)}`)
            .join(' ');
          process.stdout.write(`  ${name.padEnd(22)}${q}\n`);
        }
      }
    }
  } finally {
    await pool.close();
  }
  return 0;
}

async function calibrateRuns(
  root: string,
  values: { gpu?: string; model?: string; start?: string; out?: string },
): Promise<number> {
  if (!values.start && (!values.gpu || !values.model))
    throw new UsageError(`--runs needs --gpu and --model (or --start PROFILE)\n${USAGE}`);
  let start: Profile;
  if (values.start) start = loadProfile(values.start);
  else
    start = derive(
      { gpu: values.gpu!, model: values.model! },
      readDeriveCatalog(join(PACKAGE_ROOT, 'models')),
      measuredProfiles(),
    );
  const pool = new SimulationPool();
  try {
    const result = await calibrateFromRuns(
      root,
      start,
      (tasks) => Promise.all(tasks.map((t) => pool.run({ ...t, includeStepStats: true }))),
      {
        onRound: (round, mape) =>
          process.stderr.write(
            `  serving fit round ${round + 1}: ITL MAPE before refit ${mape.toFixed(1)}%\n`,
          ),
      },
    );
    const out = values.out ?? join(PROFILES_DIR, `${result.profile.id}.json`);
    mkdirSync(dirname(out), { recursive: true });
    writeFileSync(out, `${JSON.stringify(result.profile, null, 1)}\n`);
    process.stdout.write(
      `${result.profile.id} -> ${out}\n  ${result.runs} runs (${result.servedRuns} served, ${result.failedToStart} failed to start), started from ${start.id}\n  refitted: ${result.refitted.join(', ')}\n  unchanged: ${result.unchanged.join('; ')}\n`,
    );
    const check = result.servingCheck;
    if (check)
      process.stdout.write(
        `  check on the kit's serving runs (held out of the fits): throughput MAPE ${check.throughputMapePct.toFixed(2)}%, mean ITL MAPE ${check.meanItlMapePct.toFixed(2)}%\n${check.runs
          .map(
            (r) =>
              `    ${r.id}: ${r.realTokensPerSecond.toFixed(0)} tok/s real, ${r.twinTokensPerSecond.toFixed(0)} twin; mean ITL ${r.realMeanItlMs.toFixed(1)} ms real, ${r.twinMeanItlMs.toFixed(1)} twin\n`,
          )
          .join('')}`,
      );
  } finally {
    await pool.close();
  }
  return 0;
}
