import type { ModelShape } from './config.js';
import { residency } from './residency.js';

export const GIB = 2 ** 30;

/** The vLLM flags that size memory, with vLLM 0.8.5's defaults where the user gives none. */
export interface ServerFlags {
  gpuMemoryUtilization: number;
  maxModelLen: number;
  maxNumBatchedTokens: number;
  maxNumSeqs: number;
  blockSize: number;
}

/** How vLLM 0.8.5 wraps a model's layers for LoRA (models/architectures/vllm-0.8.5.json). */
export interface LoraLayout {
  embeddingLora: boolean;
  extraVocabSize: number;
}

/** vLLM pads vocabularies to a multiple of this with LoRA enabled (lora_vocab_padding_size). */
const LORA_VOCAB_PADDING = 256;
const padTo = (n: number, m: number) => Math.ceil(n / m) * m;

/** Elements of the decoder's linear layers, one layer: q, k, v, o, gate, up, down. */
function layerLinearElements(m: ModelShape): number {
  const q = m.attentionHeads * m.headDim;
  const kv = m.kvHeads * m.headDim;
  return m.hiddenSize * (q + 2 * kv) + q * m.hiddenSize + 3 * m.hiddenSize * m.intermediateSize;
}

/** Parameters of the model as vLLM loads it; with embedding LoRA the embedding grows per slot. */
export function weightBytes(m: ModelShape, lora: LoraLayout, maxLoras: number): number {
  const extraPerSlot = lora.embeddingLora ? lora.extraVocabSize : 0;
  const embedRows = padTo(m.vocabSize + extraPerSlot * maxLoras, LORA_VOCAB_PADDING);
  const headRows = m.tiedEmbeddings ? 0 : padTo(m.vocabSize + extraPerSlot, LORA_VOCAB_PADDING);
  const norms = (2 * m.layers + 1) * m.hiddenSize;
  // The rotary cos/sin cache: max_position x head_dim in the model dtype.
  const rotary = m.maxPositionEmbeddings * m.headDim;
  const elements =
    (embedRows + headRows) * m.hiddenSize + m.layers * layerLinearElements(m) + norms + rotary;
  return elements * m.dtypeBytes;
}

/**
 * LoRA slot buffers per slot and rank (vllm/lora/layers.py, create_lora_weights): for each
 * layer, lora_a is rank x input and lora_b output x rank per packed slice (q/k/v, gate/up);
 * with embedding LoRA, the input embedding (vocab + extra rows) and the LM head add theirs.
 */
export function loraBytesPerSlotRank(m: ModelShape, lora: LoraLayout): number {
  const h = m.hiddenSize;
  const q = m.attentionHeads * m.headDim;
  const kv = m.kvHeads * m.headDim;
  const i = m.intermediateSize;
  const perLayer = 3 * h + (q + 2 * kv) + (q + h) + (2 * h + 2 * i) + (i + h);
  let elements = m.layers * perLayer;
  if (lora.embeddingLora) {
    const vocab = m.vocabSize + lora.extraVocabSize;
    elements += vocab + h; // embedding: lora_a over the vocabulary, lora_b over the hidden size
    elements += h + padTo(vocab, LORA_VOCAB_PADDING); // LM head: lora_a hidden, lora_b vocabulary
  }
  return elements * m.dtypeBytes;
}

/** Per slot, whatever its rank: the extra-vocabulary embeddings of embedding LoRA and its rows. */
export function loraBytesPerSlot(m: ModelShape, lora: LoraLayout): number {
  if (!lora.embeddingLora) return 0;
  // embeddings_tensors of the embedding and of the LM head, plus the embedding's extra rows.
  return 3 * lora.extraVocabSize * m.hiddenSize * m.dtypeBytes;
}

/** KV bytes one token takes over all layers: keys and values. */
export const kvBytesPerToken = (m: ModelShape) =>
  2 * m.layers * m.kvHeads * m.headDim * m.dtypeBytes;

/**
 * The sampler's peak in vLLM 0.8.5's profile_run: one logits row per dummy request
 * (min(max_num_seqs, max_num_batched_tokens) of them), held as bf16 logits (2 bytes), their
 * float32 copy (4), the softmax probabilities (4) and the top-k/top-p sampler's renormalised
 * probabilities (4).
 */
export const SAMPLER_BYTES_PER_LOGIT = 14;

/** The largest transient of the dummy forward pass: the MLP's gate/up output and its product. */
function forwardPeakBytes(m: ModelShape, flags: ServerFlags): number {
  return flags.maxNumBatchedTokens * 3 * m.intermediateSize * m.dtypeBytes;
}

export function activationPeakBytes(m: ModelShape, lora: LoraLayout, flags: ServerFlags): number {
  const rows = Math.min(flags.maxNumSeqs, flags.maxNumBatchedTokens);
  const logitsWidth = padTo(
    m.vocabSize + (lora.embeddingLora ? lora.extraVocabSize : 0),
    LORA_VOCAB_PADDING,
  );
  return Math.max(forwardPeakBytes(m, flags), rows * logitsWidth * SAMPLER_BYTES_PER_LOGIT);
}

/** Everything that decides the KV cache of one server, in bytes. */
export interface MemoryAccount {
  totalBytes: number;
  budgetBytes: number;
  weightBytes: number;
  loraBytes: number;
  activationPeakBytes: number;
  /**
   * What the caching allocator holds beyond the tensors' bytes after empty_cache: segment
   * rounding and the gaps beside the slot buffers, which vLLM counts as non-torch memory.
   */
  allocatorGapBytes: number;
  /** Non-torch allocations (CUDA context, NCCL, cuBLAS workspaces): learned from measurements. */
  otherBytes: number;
  kvCacheBytes: number;
  kvCacheTokens: number;
}

/**
 * vLLM 0.8.5's determine_available_memory: total x gpu_memory_utilization minus the profiled
 * peak (weights, LoRA slots, the activation peak) minus non-torch memory, which is what CUDA
 * holds beyond torch's live tensors after empty_cache (the allocator's gaps, then CUDA's
 * context and workspaces); what remains is the KV cache, cut into blocks of block_size tokens
 * over every layer.
 */
export function memoryAccount(
  m: ModelShape,
  lora: LoraLayout,
  flags: ServerFlags,
  totalBytes: number,
  otherBytes: number,
  maxLoras: number,
  maxLoraRank: number,
): MemoryAccount {
  const budgetBytes = totalBytes * flags.gpuMemoryUtilization;
  const weights = weightBytes(m, lora, maxLoras);
  const loraBytes =
    maxLoras * (maxLoraRank * loraBytesPerSlotRank(m, lora) + loraBytesPerSlot(m, lora)) -
    // the embedding's extra rows are counted in the weights already
    (lora.embeddingLora ? maxLoras * lora.extraVocabSize * m.hiddenSize * m.dtypeBytes : 0);
  const activation = activationPeakBytes(m, lora, flags);
  const resident = residency(m, lora, maxLoras, maxLoraRank);
  const allocatorGapBytes = resident.reservedBytes - resident.tensorBytes;
  const kvCacheBytes =
    budgetBytes - weights - loraBytes - allocatorGapBytes - activation - otherBytes;
  const blockBytes = flags.blockSize * kvBytesPerToken(m);
  const kvCacheTokens =
    kvCacheBytes > 0 ? Math.floor(kvCacheBytes / blockBytes) * flags.blockSize : 0;
  return {
    totalBytes,
    budgetBytes,
    weightBytes: weights,
    loraBytes,
    activationPeakBytes: activation,
    allocatorGapBytes,
    otherBytes,
    kvCacheBytes,
    kvCacheTokens,
  };
}

/**
 * The table stops here: the search's candidates go up to 512 slots, and beyond the table the
 * profile reads the linear account less the largest gap the table saw.
 */
const TABLE_SLOTS = 512;

/**
 * KV tokens for 1, 2, ... slots of one rank, each replayed through memoryAccount, up to and
 * including the first slot count at which vLLM would not start, as it refuses to when one
 * max_model_len sequence does not fit the cache (or TABLE_SLOTS).
 */
export function kvCacheTable(
  m: ModelShape,
  lora: LoraLayout,
  flags: ServerFlags,
  totalBytes: number,
  otherBytes: number,
  maxLoraRank: number,
): number[] {
  const tokens: number[] = [];
  for (let maxLoras = 1; maxLoras <= TABLE_SLOTS; maxLoras++) {
    const kv = memoryAccount(m, lora, flags, totalBytes, otherBytes, maxLoras, maxLoraRank);
    tokens.push(kv.kvCacheTokens);
    if (kv.kvCacheTokens < flags.maxModelLen) break;
  }
  return tokens;
}
