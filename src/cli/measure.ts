import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { derive, readDeriveCatalog } from '../derive/index.js';
import { runLoad } from '../measure/load.js';
import { MeasureInputError } from '../measure/npy.js';
import { measurePlan, planSchema } from '../measure/plan.js';
import { runScript } from '../measure/runsh.js';
import { measuredProfiles, PACKAGE_ROOT } from '../profiles/store.js';
import { InputError, fieldIssues } from '../input/errors.js';
import { intOption, parseOptions, UsageError } from './options.js';

const USAGE = `usage: loraplan measure plan --gpu G --model M [--ranks 8,16,32] [--budget-minutes 60]
                              [--max-model-len N] --out DIR
       loraplan measure run --plan DIR/plan.json --experiment ID --base-url URL --out FILE
                              [--duration-seconds S] [--seed N]

plan: writes DIR/plan.json (experiments that identify the profile's terms, within the budget),
DIR/run.sh (runs them against vLLM on the GPU machine, resumably) and DIR/profile.json (the
derived profile the calibration starts from). Terms no experiment covers are named.
run: drives one experiment's load against a vLLM server's OpenAI API and writes one JSON line
per request (TTFT, inter-token gaps, tokens, outcome).`;

export async function measureCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === 'plan') return plan(rest);
  if (sub === 'run') return run(rest);
  process.stdout.write(`${USAGE}\n`);
  return sub === undefined || sub === '--help' || sub === '-h' ? 0 : 2;
}

async function plan(argv: string[]): Promise<number> {
  const { values } = parseOptions(argv, {
    gpu: { type: 'string' },
    model: { type: 'string' },
    ranks: { type: 'string' },
    'budget-minutes': { type: 'string' },
    'max-model-len': { type: 'string' },
    out: { type: 'string' },
  });
  if (values.help) return (process.stdout.write(`${USAGE}\n`), 0);
  if (!values.gpu || !values.model || !values.out)
    throw new UsageError(`--gpu, --model and --out are required\n${USAGE}`);
  const ranks = (values.ranks ?? '8,16,32')
    .split(',')
    .map((r, i) => intOption(r.trim(), `--ranks[${i}]`)!);
  const budgetMinutes = intOption(values['budget-minutes'], '--budget-minutes') ?? 60;
  const maxModelLen = intOption(values['max-model-len'], '--max-model-len') ?? 8192;
  const profile = derive(
    { gpu: values.gpu, model: values.model, flags: { maxModelLen } },
    readDeriveCatalog(join(PACKAGE_ROOT, 'models')),
    measuredProfiles(),
  );
  const p = measurePlan(profile, { ranks, budgetMinutes, maxModelLen });
  mkdirSync(values.out, { recursive: true });
  writeFileSync(join(values.out, 'plan.json'), `${JSON.stringify(p, null, 1)}\n`);
  writeFileSync(join(values.out, 'profile.json'), `${JSON.stringify(profile, null, 1)}\n`);
  const script = join(values.out, 'run.sh');
  writeFileSync(script, runScript(p));
  chmodSync(script, 0o755);
  process.stdout.write(
    `${p.experiments.length} experiments, about ${p.plannedMinutes} of ${budgetMinutes} minutes: ${p.experiments.map((e) => e.id).join(', ')}\nwrote ${script}\n`,
  );
  for (const u of p.uncovered) process.stdout.write(`not identified: ${u.term}: ${u.why}\n`);
  return 0;
}

async function run(argv: string[]): Promise<number> {
  const { values } = parseOptions(argv, {
    plan: { type: 'string' },
    experiment: { type: 'string' },
    'base-url': { type: 'string' },
    out: { type: 'string' },
    'duration-seconds': { type: 'string' },
    seed: { type: 'string' },
  });
  if (values.help) return (process.stdout.write(`${USAGE}\n`), 0);
  if (!values.plan || !values.experiment || !values['base-url'] || !values.out)
    throw new UsageError(`--plan, --experiment, --base-url and --out are required\n${USAGE}`);
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(values.plan, 'utf8'));
  } catch (e) {
    if (e instanceof SyntaxError)
      throw new MeasureInputError(values.plan, `not valid JSON (${e.message})`);
    throw e;
  }
  const parsed = planSchema.safeParse(raw);
  if (!parsed.success) throw new InputError(fieldIssues(parsed.error, [values.plan]));
  const experiment = parsed.data.experiments.find((e) => e.id === values.experiment);
  if (!experiment)
    throw new UsageError(
      `${values.plan} has no experiment "${values.experiment}"; it has ${parsed.data.experiments.map((e) => e.id).join(', ')}`,
    );
  const duration = intOption(values['duration-seconds'], '--duration-seconds');
  const seed = intOption(values.seed, '--seed', 0);
  const records = await runLoad(experiment, {
    baseUrl: values['base-url'],
    ...(duration !== undefined ? { durationSeconds: duration } : {}),
    ...(seed !== undefined ? { seed } : {}),
  });
  mkdirSync(dirname(values.out), { recursive: true });
  writeFileSync(
    values.out,
    records.map((r) => JSON.stringify(r)).join('\n') + (records.length ? '\n' : ''),
  );
  const ok = records.filter((r) => r.ok).length;
  process.stdout.write(
    `${experiment.id}: ${records.length} requests, ${ok} complete; wrote ${values.out}\n`,
  );
  return 0;
}
