import { createHash } from 'node:crypto';
import { canonicalJson } from '../search/cache.js';
import { profileSchema, type Profile } from '../twin/profile.js';
import type { ModelShape } from './config.js';
import type { Gpu } from './gpus.js';
import {
  GIB,
  kvBytesPerToken,
  kvCacheTable,
  loraBytesPerSlot,
  loraBytesPerSlotRank,
  memoryAccount,
  type LoraLayout,
  type ServerFlags,
} from './memory.js';
import { termWork, type TermWork } from './work.js';

/** A measured profile with what the derivation needs to read it as work times factors. */
export interface FitSource {
  profile: Profile;
  shape: ModelShape;
  lora: LoraLayout;
  gpu: Gpu;
  flags: ServerFlags;
}

/** The model a profile is derived for. */
export interface DeriveTarget {
  gpu: Gpu;
  modelId: string;
  shape: ModelShape;
  lora: LoraLayout;
  flags: ServerFlags;
  /** Out-of-fold errors of derived profiles (validate:derived), quoted in answers. */
  expectedError?: Record<string, number>;
}

type StepTerms = Profile['stepTime'];

/** Achieved fraction per step term: measured term / work, averaged over the fitting profiles. */
export interface Factors {
  stepTime: {
    base: Record<keyof StepTerms['base'], number>;
    lora: Record<keyof StepTerms['lora'], number>;
  };
  /** Milliseconds per wrapped module of one adapter load, CPU to GPU (and its padding penalty). */
  adapterLoadPerModuleMs: number;
  paddedPenaltyPerModuleMs: number;
  diskToCpuPerModuleMs: number;
  /** Non-torch memory, GiB: the median of what the measured KV rows leave unexplained. */
  otherGiB: number;
  /** CUDA's total over the datasheet's memory on the measured GPU. */
  cudaTotalFraction: number;
}

const mean = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const median = (xs: readonly number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};
const round = (x: number, digits = 6) => Number(x.toPrecision(digits));

export function cudaTotalBytes(gpu: Gpu, cudaTotalFraction: number): number {
  return (gpu.cudaTotalGiB ?? gpu.memoryGiB * cudaTotalFraction) * GIB;
}

/** The factors the fitting profiles imply. Deterministic: sources are read in id order. */
export function learnFactors(sources: readonly FitSource[]): Factors {
  if (sources.length === 0) throw new Error('learnFactors needs at least one measured profile');
  const sorted = [...sources].sort((a, b) => a.profile.id.localeCompare(b.profile.id));
  const works = sorted.map((s) => termWork(s.shape, s.lora, s.gpu));
  const ratio = <G extends 'base' | 'lora'>(group: G, term: keyof TermWork[G]) =>
    mean(
      sorted.map((s, i) => {
        const measured = (s.profile.stepTime[group] as Record<string, number>)[term as string]!;
        return measured / (works[i]![group] as Record<string, number>)[term as string]!;
      }),
    );
  const baseKeys = ['intercept', 'perDecodeSeq', 'perPrefillToken', 'perKvKiloToken'] as const;
  const loraKeys = [
    'intercept',
    'perSlot',
    'perAdapterInBatch',
    'perBatchedToken',
    'perBatchedTokenSlot',
  ] as const;
  const cudaTotalFraction = mean(
    sorted.map((s) => (s.gpu.cudaTotalGiB ?? s.gpu.memoryGiB) / s.gpu.memoryGiB),
  );
  const others = sorted.flatMap((s) => {
    const total = cudaTotalBytes(s.gpu, cudaTotalFraction);
    return s.profile.kvCache.measured
      .filter((r) => r.kvCacheTokens !== null)
      .map((r) => {
        const account = memoryAccount(
          s.shape,
          s.lora,
          s.flags,
          total,
          0,
          r.maxLoras,
          r.maxLoraRank,
        );
        return (account.kvCacheBytes - r.kvCacheTokens! * kvBytesPerToken(s.shape)) / GIB;
      });
  });
  const perModule = (pick: (p: Profile) => number) =>
    mean(sorted.map((s, i) => pick(s.profile) / works[i]!.adapterModules));
  return {
    stepTime: {
      base: Object.fromEntries(
        baseKeys.map((k) => [k, round(ratio('base', k))]),
      ) as Factors['stepTime']['base'],
      lora: Object.fromEntries(
        loraKeys.map((k) => [k, round(ratio('lora', k))]),
      ) as Factors['stepTime']['lora'],
    },
    adapterLoadPerModuleMs: round(
      perModule((p) =>
        mean(
          p.adapterLoad.cpuToGpuMs.filter((r) => r.adapterRank === r.maxLoraRank).map((r) => r.ms),
        ),
      ),
    ),
    paddedPenaltyPerModuleMs: round(perModule((p) => p.adapterLoad.cpuToGpuFallback.paddedPenalty)),
    diskToCpuPerModuleMs: round(perModule((p) => p.adapterLoad.diskToCpuMs)),
    otherGiB: others.length > 0 ? round(median(others)) : 0,
    cudaTotalFraction: round(cudaTotalFraction),
  };
}

/** A derived profile's id: catalog ids joined as the shipped ones, then a hash of its content. */
function derivedId(target: DeriveTarget, body: unknown): string {
  const hash = createHash('sha256').update(canonicalJson(body)).digest('hex').slice(0, 12);
  return `${target.gpu.id}/${target.modelId}@${hash}`;
}

/**
 * Derives a profile for a GPU and model from the datasheet, the config and the factors of the
 * fitting profiles. Pure: the same inputs give the same profile, bit for bit.
 */
export function deriveProfile(target: DeriveTarget, sources: readonly FitSource[]): Profile {
  const factors = learnFactors(sources);
  const sorted = [...sources].sort((a, b) => a.profile.id.localeCompare(b.profile.id));
  const first = sorted[0]!.profile;
  const work = termWork(target.shape, target.lora, target.gpu);
  const { shape, lora, flags } = target;
  const total = cudaTotalBytes(target.gpu, factors.cudaTotalFraction);
  const other = factors.otherGiB * GIB;
  const empty = memoryAccount(shape, lora, flags, total, other, 0, 0);
  const bytesPerToken = kvBytesPerToken(shape);
  const modules = work.adapterModules;
  const term = <G extends 'base' | 'lora'>(group: G) =>
    Object.fromEntries(
      Object.entries(work[group]).map(([k, w]) => [
        k,
        round((w as number) * (factors.stepTime[group] as Record<string, number>)[k]!),
      ]),
    );
  const ranks = first.allowedLoraRanks;
  const loadMs = round(factors.adapterLoadPerModuleMs * modules);
  const penaltyMs = round(factors.paddedPenaltyPerModuleMs * modules);
  const derivation = {
    gpu: target.gpu,
    model: { id: target.modelId, ...shape },
    flags,
    fitOn: sorted.map((s) => s.profile.id),
    factors,
    memoryGiB: {
      cudaTotal: round(total / GIB),
      budget: round(empty.budgetBytes / GIB),
      weights: round(empty.weightBytes / GIB),
      loraPerSlotRank: round(loraBytesPerSlotRank(shape, lora) / GIB),
      loraPerSlot: round(loraBytesPerSlot(shape, lora) / GIB),
      activationPeak: round(empty.activationPeakBytes / GIB),
      allocatorGapWithoutSlots: round(empty.allocatorGapBytes / GIB),
      other: factors.otherGiB,
      kvCacheWithoutSlots: round(empty.kvCacheBytes / GIB),
    },
    ...(target.expectedError ? { expectedError: target.expectedError } : {}),
  };
  const body = {
    schemaVersion: 1 as const,
    evidence: 'derived' as const,
    gpu: target.gpu.id,
    model: target.modelId,
    vllmVersion: first.vllmVersion,
    maxModelLen: flags.maxModelLen,
    blockSize: flags.blockSize,
    preallocateBlocks: first.preallocateBlocks,
    allowedLoraRanks: ranks,
    kvCache: {
      intercept: round(empty.kvCacheBytes / bytesPerToken, 9),
      perSlotRank: round(loraBytesPerSlotRank(shape, lora) / bytesPerToken, 9),
      perSlot: round(loraBytesPerSlot(shape, lora) / bytesPerToken, 9),
      measured: [],
      accounted: ranks.map((maxLoraRank) => {
        const table = kvCacheTable(shape, lora, flags, total, other, maxLoraRank);
        const linear = (n: number) =>
          (empty.kvCacheBytes -
            n * (maxLoraRank * loraBytesPerSlotRank(shape, lora) + loraBytesPerSlot(shape, lora))) /
          bytesPerToken;
        const gapTokens = Math.max(0, ...table.map((t, i) => Math.ceil(linear(i + 1) - t)));
        return { maxLoraRank, kvCacheTokens: table, gapTokens };
      }),
    },
    stepTime: { base: term('base'), lora: term('lora') },
    scheduler: {
      intercept: round(mean(sorted.map((s) => s.profile.scheduler.intercept))),
      perRunningRequest: round(mean(sorted.map((s) => s.profile.scheduler.perRunningRequest))),
      perVisitedWaitingRequest: round(
        mean(sorted.map((s) => s.profile.scheduler.perVisitedWaitingRequest)),
      ),
    },
    adapterLoad: {
      cpuToGpuMs: [],
      cpuToGpuFallback: { intercept: loadMs, perMaxLoraRank: 0, paddedPenalty: penaltyMs },
      diskToCpuMs: round(factors.diskToCpuPerModuleMs * modules),
    },
    requestLengths: first.requestLengths,
    measurementClientMaxInFlight: Math.min(
      ...sorted.map((s) => s.profile.measurementClientMaxInFlight),
    ),
    fit: {},
    derivation,
  };
  return profileSchema.parse({ id: derivedId(target, body), ...body });
}
