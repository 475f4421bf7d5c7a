import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { calibrate, calibrationInputsSchema, tablesIn } from '../calibrate/calibrate.js';
import { PROFILES_DIR } from '../profiles/store.js';
import { InputError, fieldIssues } from '../runtime/errors.js';
import { parseOptions, UsageError } from './main.js';

const USAGE = `usage: loraplan calibrate --data DIR --inputs FILE [--model M] [--out DIR]

Fits a twin profile from measurement tables shaped like shared/data/vllm-0.8.5-h100/
(kv_cache_profile.csv, validation_runs.csv and calibration/*.csv) and an inputs file giving what
tables cannot (model identity, max_model_len, request-length statistics). Writes
<out>/<gpu>/<model>.json (default out: models/profiles) and prints each fit's quality.`;

export async function calibrateCommand(argv: string[]): Promise<number> {
  const { values } = parseOptions(argv, {
    data: { type: 'string' },
    inputs: { type: 'string' },
    model: { type: 'string' },
    out: { type: 'string' },
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (!values.data || !values.inputs) throw new UsageError(`--data and --inputs are required\n${USAGE}`);
  const all = JSON.parse(readFileSync(values.inputs, 'utf8')) as Record<string, unknown>;
  const models = values.model ? [values.model] : Object.keys(all);
  for (const model of models) {
    if (!(model in all)) throw new UsageError(`${values.inputs} has no entry for model "${model}"`);
    const parsed = calibrationInputsSchema.safeParse(all[model]);
    if (!parsed.success) throw new InputError(fieldIssues(parsed.error, [model]));
    const profile = calibrate(parsed.data, tablesIn(values.data));
    const path = join(values.out ?? PROFILES_DIR, `${profile.id}.json`);
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, `${JSON.stringify(profile, null, 2)}\n`);
    process.stdout.write(`${profile.id} -> ${path}\n`);
    for (const [name, quality] of Object.entries(profile.fit)) {
      if (typeof quality === 'object' && quality !== null) {
        const q = Object.entries(quality).map(([k, v]) => `${k}=${String(v)}`).join(' ');
        process.stdout.write(`  ${name.padEnd(22)}${q}\n`);
      }
    }
  }
  return 0;
}
