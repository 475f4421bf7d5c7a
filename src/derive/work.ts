import type { ModelShape } from './config.js';
import type { Gpu } from './gpus.js';
import { kvBytesPerToken, loraBytesPerSlotRank, weightBytes, type LoraLayout } from './memory.js';

/**
 * The physical work behind each term of a profile's step time, on one GPU: the milliseconds
 * that term would take at the datasheet's peak (bytes over bandwidth, FLOPs over TFLOPs), or a
 * count where the cost is launches rather than bytes. A profile's term is this work times an
 * achieved-fraction factor learned from measured profiles (factors.ts): the factor carries
 * over between models and GPUs, the work does not.
 */
export interface TermWork {
  base: {
    intercept: number;
    perDecodeSeq: number;
    perPrefillToken: number;
    perKvKiloToken: number;
  };
  lora: {
    intercept: number;
    perSlot: number;
    perAdapterInBatch: number;
    perBatchedToken: number;
    perBatchedTokenSlot: number;
  };
  /** LoRA modules an adapter load copies, layer by layer. */
  adapterModules: number;
}

const msFromBytes = (bytes: number, gpu: Gpu) => (bytes / (gpu.hbmBandwidthGBps * 1e9)) * 1e3;
const msFromFlops = (flops: number, gpu: Gpu) => (flops / (gpu.bf16DenseTflops * 1e12)) * 1e3;

/** Matmul parameters a token passes through: every linear layer, and the LM head if asked. */
function matmulParams(m: ModelShape, withHead: boolean): number {
  const q = m.attentionHeads * m.headDim;
  const kv = m.kvHeads * m.headDim;
  const perLayer =
    m.hiddenSize * (q + 2 * kv) + q * m.hiddenSize + 3 * m.hiddenSize * m.intermediateSize;
  return m.layers * perLayer + (withHead ? m.vocabSize * m.hiddenSize : 0);
}

export function termWork(m: ModelShape, lora: LoraLayout, gpu: Gpu): TermWork {
  // Modules wrapped per layer (q/k/v, o, gate/up, down as vLLM packs them), plus embedding LoRA's two.
  const modules = 4 * m.layers + (lora.embeddingLora ? 2 : 0);
  const loraBytesPerRank = loraBytesPerSlotRank(m, lora);
  return {
    base: {
      // A decode step streams every weight once.
      intercept: msFromBytes(weightBytes(m, lora, 0), gpu),
      // Each decoded sequence: 2 FLOPs per matmul parameter, the LM head included.
      perDecodeSeq: msFromFlops(2 * matmulParams(m, true), gpu),
      // Each prefilled token: the same without the LM head (only the last token reaches it).
      perPrefillToken: msFromFlops(2 * matmulParams(m, false), gpu),
      // Each thousand tokens of KV in use: read once per step by attention.
      perKvKiloToken: msFromBytes(1000 * kvBytesPerToken(m), gpu),
    },
    lora: {
      // Launch-bound: the punica kernels run per wrapped module whatever the GPU.
      intercept: modules,
      perSlot: modules,
      // Each distinct adapter in a batch: its A/B weights read, per unit of rank.
      perAdapterInBatch: msFromBytes(loraBytesPerRank, gpu),
      // Each batched token through the LoRA matmuls, per unit of rank.
      perBatchedToken: msFromFlops(2 * (loraBytesPerRank / m.dtypeBytes), gpu),
      // Thread blocks launched per token block and slot, per wrapped module.
      perBatchedTokenSlot: modules,
    },
    adapterModules: modules,
  };
}
