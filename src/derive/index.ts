// Profiles derived from a GPU datasheet and a Hugging Face config, with achieved-fraction factors
// learned from measured profiles. Pure: catalogs are read once from models/ and passed in.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { InputError, type FieldIssue } from '../input/errors.js';
import type { Profile } from '../twin/profile.js';
import { readModelConfig, type ModelShape } from './config.js';
import { deriveProfile, type FitSource } from './derive.js';
import { readArchitectures, readGpuCatalog, type ArchitectureTable, type Gpu } from './gpus.js';
import type { LoraLayout, ServerFlags } from './memory.js';

export { readModelConfig, type ModelShape } from './config.js';
export {
  deriveProfile,
  learnFactors,
  cudaTotalBytes,
  type Factors,
  type FitSource,
} from './derive.js';
export {
  kvBytesPerToken,
  memoryAccount,
  GIB,
  type MemoryAccount,
  type ServerFlags,
  type LoraLayout,
} from './memory.js';
export type { Gpu } from './gpus.js';

/** The vLLM flags a derivation takes; what is absent takes vLLM's (and the twin's) default. */
export const deriveFlagsSchema = z
  .object({
    gpuMemoryUtilization: z.number().gt(0).max(1).optional(),
    maxModelLen: z
      .number()
      .int()
      .positive()
      .max(1 << 24)
      .optional(),
    maxNumBatchedTokens: z
      .number()
      .int()
      .positive()
      .max(1 << 20)
      .optional(),
    maxNumSeqs: z
      .number()
      .int()
      .positive()
      .max(1 << 16)
      .optional(),
  })
  .strict();
export type DeriveFlags = z.infer<typeof deriveFlagsSchema>;

export interface DeriveRequest {
  gpu: string;
  /** A catalog model id (models/configs/ID/config.json) ... */
  model?: string;
  /** ... or a config.json as Hugging Face publishes it. */
  config?: unknown;
  flags?: DeriveFlags;
  /** Measured profiles to learn the factors from; all measured ones when absent. */
  fitOn?: string[];
}

/** The catalogs a derivation reads, loaded once. */
export interface DeriveCatalog {
  gpus: Gpu[];
  configs: Map<string, unknown>;
  architectures: ArchitectureTable;
  /** Flags of the measurements behind measured profiles, by "gpu/vllmVersion". */
  measuredFlags: Map<string, ServerFlags>;
  expectedError?: Record<string, number>;
}

const serverFlagsFileSchema = z.object({
  gpu: z.string(),
  vllmVersion: z.string(),
  gpuMemoryUtilization: z.number(),
  maxNumBatchedTokens: z.number().int(),
  maxNumSeqs: z.number().int(),
  blockSize: z.number().int(),
});

export const EXPECTED_ERROR_FILE = join('derived', 'expected-error.json');

export function readDeriveCatalog(modelsDir: string): DeriveCatalog {
  const configsDir = join(modelsDir, 'configs');
  const configs = new Map(
    readdirSync(configsDir, { withFileTypes: true })
      .filter((d) => d.isDirectory())
      .map((d) => [
        d.name,
        JSON.parse(readFileSync(join(configsDir, d.name, 'config.json'), 'utf8')) as unknown,
      ]),
  );
  const measuredFlags = new Map<string, ServerFlags>();
  const measurementsDir = join(modelsDir, 'measurements');
  for (const dir of readdirSync(measurementsDir)) {
    const file = join(measurementsDir, dir, 'server-flags.json');
    if (!existsSync(file)) continue;
    const f = serverFlagsFileSchema.parse(JSON.parse(readFileSync(file, 'utf8')));
    measuredFlags.set(`${f.gpu}/${f.vllmVersion}`, {
      gpuMemoryUtilization: f.gpuMemoryUtilization,
      maxNumBatchedTokens: f.maxNumBatchedTokens,
      maxNumSeqs: f.maxNumSeqs,
      blockSize: f.blockSize,
      maxModelLen: 0,
    });
  }
  const errorFile = join(modelsDir, EXPECTED_ERROR_FILE);
  const expectedError = existsSync(errorFile)
    ? z.record(z.string(), z.number()).parse(JSON.parse(readFileSync(errorFile, 'utf8')).errors)
    : undefined;
  return {
    gpus: readGpuCatalog(modelsDir),
    configs,
    architectures: readArchitectures(modelsDir),
    measuredFlags,
    ...(expectedError ? { expectedError } : {}),
  };
}

const layoutFor = (catalog: DeriveCatalog, shape: ModelShape): LoraLayout => ({
  embeddingLora: catalog.architectures.architectures[shape.architecture]?.embeddingLora ?? false,
  extraVocabSize: catalog.architectures.loraExtraVocabSize,
});

/** A measured profile read as a fitting source; undefined when its GPU, config or flags are unknown. */
export function fitSourceOf(catalog: DeriveCatalog, profile: Profile): FitSource | undefined {
  const gpu = catalog.gpus.find((g) => g.id === profile.gpu);
  const config = catalog.configs.get(profile.model);
  const flags = catalog.measuredFlags.get(`${profile.gpu}/${profile.vllmVersion}`);
  if (!gpu || config === undefined || !flags) return undefined;
  const read = readModelConfig(config, Object.keys(catalog.architectures.architectures));
  if (!('shape' in read)) return undefined;
  return {
    profile,
    shape: read.shape,
    lora: layoutFor(catalog, read.shape),
    gpu,
    flags: { ...flags, maxModelLen: profile.maxModelLen },
  };
}

/** Bad or unsupported derivation input, by field: an InputError, so routes answer 400 and commands exit 2. */
export class DeriveError extends InputError {}

/**
 * Derives the profile a request asks for. `measured` are the profiles factors may be learned
 * from (the shipped ones); bad input throws DeriveError naming each field.
 */
export function derive(
  request: DeriveRequest,
  catalog: DeriveCatalog,
  measured: readonly Profile[],
): Profile {
  const issues: FieldIssue[] = [];
  const gpu = catalog.gpus.find((g) => g.id === request.gpu);
  if (!gpu)
    issues.push({
      field: 'gpu',
      message: `unknown GPU "${request.gpu}"; known: ${catalog.gpus.map((g) => g.id).join(', ')}`,
    });
  if ((request.model === undefined) === (request.config === undefined))
    issues.push({
      field: 'model',
      message: 'give either model (a catalog id) or config (a config.json)',
    });
  let config: unknown = request.config;
  if (request.model !== undefined) {
    config = catalog.configs.get(request.model);
    if (config === undefined)
      issues.push({
        field: 'model',
        message: `unknown model "${request.model}"; known: ${[...catalog.configs.keys()].sort().join(', ')}; or give config`,
      });
  }
  const fitIds =
    request.fitOn ??
    measured.filter((p) => (p.evidence ?? 'measured') === 'measured').map((p) => p.id);
  const sources: FitSource[] = [];
  for (const [i, id] of fitIds.entries()) {
    const p = measured.find((m) => m.id === id);
    const source =
      p && (p.evidence ?? 'measured') === 'measured' ? fitSourceOf(catalog, p) : undefined;
    if (source) sources.push(source);
    else
      issues.push({
        field: `fitOn[${i}]`,
        message: `"${id}" is not a measured profile whose GPU, config and flags are known; measured: ${measured.map((m) => m.id).join(', ')}`,
      });
  }
  if (fitIds.length === 0)
    issues.push({ field: 'fitOn', message: 'needs at least one measured profile' });
  if (issues.length > 0) throw new DeriveError(issues);
  const read = readModelConfig(config, Object.keys(catalog.architectures.architectures));
  if (!('shape' in read)) throw new DeriveError(read.issues);
  const shape = read.shape;
  const modelId =
    request.model ?? `${shape.architecture.replace(/ForCausalLM$/, '').toLowerCase()}-custom`;
  const flags: ServerFlags = {
    gpuMemoryUtilization: request.flags?.gpuMemoryUtilization ?? 0.9,
    maxModelLen: request.flags?.maxModelLen ?? shape.maxPositionEmbeddings,
    maxNumBatchedTokens: request.flags?.maxNumBatchedTokens ?? 2048,
    maxNumSeqs: request.flags?.maxNumSeqs ?? 2048,
    blockSize: 16,
  };
  return deriveProfile(
    {
      gpu: gpu!,
      modelId,
      shape,
      lora: layoutFor(catalog, shape),
      flags,
      ...(catalog.expectedError ? { expectedError: catalog.expectedError } : {}),
    },
    sources,
  );
}
