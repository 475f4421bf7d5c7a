import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { derive, readDeriveCatalog } from '../derive/index.js';
import {
  listProfiles,
  loadProfile,
  measuredProfiles,
  PACKAGE_ROOT,
  PROFILES_DIR,
} from '../profiles/store.js';
import { InputError, fieldIssues } from '../input/errors.js';
import { deriveRequestSchema } from '../service/profiles.js';
import { evidenceOf } from '../twin/profile.js';
import { intOption, parseOptions, UsageError } from './options.js';

const USAGE = `usage: loraplan profile derive --gpu GPU (--model MODEL | --config config.json)
         [--gpu-memory-utilization F] [--max-model-len N] [--max-num-batched-tokens N]
         [--max-num-seqs N] [--fit-on PROFILE,...] [--out FILE]
       loraplan profile list

derive: builds a profile from the GPU's datasheet (models/gpus/catalog.json) and a Hugging Face
config.json (a model of models/configs/, or any file), with factors learned from the measured
profiles named by --fit-on (default: all). Writes FILE, by default
models/profiles/<gpu>/<model>@<hash>.json, where every command and the service find it by the
id it prints.
list: every profile with its evidence.`;

export async function profileCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === 'list') {
    for (const id of listProfiles())
      process.stdout.write(`${id}\t${evidenceOf(loadProfile(id))}\n`);
    return 0;
  }
  if (sub !== 'derive') {
    process.stdout.write(`${USAGE}\n`);
    return sub === undefined || sub === '--help' || sub === '-h' ? 0 : 2;
  }
  const { values } = parseOptions(rest, {
    gpu: { type: 'string' },
    model: { type: 'string' },
    config: { type: 'string' },
    'gpu-memory-utilization': { type: 'string' },
    'max-model-len': { type: 'string' },
    'max-num-batched-tokens': { type: 'string' },
    'max-num-seqs': { type: 'string' },
    'fit-on': { type: 'string' },
    out: { type: 'string' },
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (!values.gpu) throw new UsageError(`--gpu is required\n${USAGE}`);
  const utilization = values['gpu-memory-utilization'];
  const flags = {
    ...(utilization !== undefined ? { gpuMemoryUtilization: Number(utilization) } : {}),
    ...optionalInt('maxModelLen', values['max-model-len'], 'max-model-len'),
    ...optionalInt(
      'maxNumBatchedTokens',
      values['max-num-batched-tokens'],
      'max-num-batched-tokens',
    ),
    ...optionalInt('maxNumSeqs', values['max-num-seqs'], 'max-num-seqs'),
  };
  const request = deriveRequestSchema.safeParse({
    gpu: values.gpu,
    ...(values.model ? { model: values.model } : {}),
    ...(values.config ? { config: readConfig(values.config) } : {}),
    ...(Object.keys(flags).length > 0 ? { flags } : {}),
    ...(values['fit-on'] ? { fitOn: values['fit-on'].split(',').map((s) => s.trim()) } : {}),
  });
  if (!request.success) throw new InputError(fieldIssues(request.error));
  const measured = measuredProfiles();
  const profile = derive(request.data, readDeriveCatalog(join(PACKAGE_ROOT, 'models')), measured);
  const out = values.out ?? join(PROFILES_DIR, `${profile.id}.json`);
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, `${JSON.stringify(profile, null, 1)}\n`);
  const memory = (profile.derivation as { memoryGiB: Record<string, number> }).memoryGiB;
  process.stdout.write(
    `${profile.id}\nwrote ${out}\nKV cache without slots ${memory.kvCacheWithoutSlots} GiB (${Math.round(profile.kvCache.intercept)} tokens); weights ${memory.weights} GiB, LoRA ${memory.loraPerSlotRank} GiB per slot and rank\n`,
  );
  return 0;
}

function optionalInt<K extends string>(key: K, value: string | undefined, name: string) {
  const n = intOption(value, `--${name}`);
  return n === undefined ? {} : ({ [key]: n } as Record<K, number>);
}

function readConfig(file: string): unknown {
  const text = readFileSync(file, 'utf8');
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw new UsageError(`${file}: not valid JSON (${(e as Error).message})`);
  }
}
