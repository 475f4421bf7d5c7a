import { CachingAllocator, type Allocation } from './allocator.js';
import type { ModelShape } from './config.js';
import type { LoraLayout } from './memory.js';

const LORA_VOCAB_PADDING = 256;
const padTo = (n: number, m: number) => Math.ceil(n / m) * m;

/** What stays on the GPU before the KV cache: the tensors' own bytes and what CUDA holds for them. */
export interface Residency {
  /** Elements x dtype of every live tensor: the weights and the LoRA slot buffers. */
  tensorBytes: number;
  /** Segments the caching allocator keeps after empty_cache: tensorBytes plus rounding and gaps. */
  reservedBytes: number;
}

/**
 * Replays the GPU allocations vLLM 0.8.5 makes before its profile run, in its order, through
 * the caching allocator: the model's parameters as its constructor creates them (layer 0's
 * rotary cache computed in float32 and cast, its temporaries freed), then the LoRA slot
 * buffers as LoRAModelManager wraps each module (vllm/lora/layers.py, create_lora_weights:
 * every lora_a of a packed layer, then every lora_b). Tensors of a few KiB (norms, biases,
 * attention scales) are left out: they live in 2 MiB small-pool segments of their own.
 */
export function residency(
  m: ModelShape,
  lora: LoraLayout,
  maxLoras: number,
  maxLoraRank: number,
): Residency {
  // The replay depends on the model and slots only, not on flags or the GPU: a derivation asks
  // for the same (slots, rank) pairs again whenever only those change, so answers are kept.
  const modelKey = JSON.stringify([m, lora]);
  let answers = REPLAYED.get(modelKey);
  if (!answers) {
    if (REPLAYED.size >= REPLAYED_MODELS) REPLAYED.delete(REPLAYED.keys().next().value!);
    answers = new Map();
    REPLAYED.set(modelKey, answers);
  }
  const key = maxLoras * 4096 + maxLoraRank;
  let answer = answers.get(key);
  if (!answer) {
    answer = Object.freeze(replay(m, lora, maxLoras, maxLoraRank));
    answers.set(key, answer);
  }
  return answer;
}

/** Models whose replays are kept, the oldest dropped first. */
const REPLAYED_MODELS = 32;
const REPLAYED = new Map<string, Map<number, Residency>>();

function replay(m: ModelShape, lora: LoraLayout, maxLoras: number, maxLoraRank: number): Residency {
  const allocator = new CachingAllocator();
  let tensorBytes = 0;
  const keep = (...dims: number[]) => {
    const bytes = dims.reduce((a, b) => a * b, 1) * m.dtypeBytes;
    tensorBytes += bytes;
    allocator.alloc(bytes);
  };
  const h = m.hiddenSize;
  const q = m.attentionHeads * m.headDim;
  const kv = m.kvHeads * m.headDim;
  const i = m.intermediateSize;
  const extra = lora.embeddingLora ? lora.extraVocabSize : 0;

  keep(padTo(m.vocabSize + extra * maxLoras, LORA_VOCAB_PADDING), h); // embed_tokens
  for (let layer = 0; layer < m.layers; layer++) {
    keep(q + 2 * kv, h); // qkv_proj
    keep(h, q); // o_proj
    if (layer === 0) rotaryCache(allocator, m, (bytes) => (tensorBytes += bytes));
    keep(2 * i, h); // gate_up_proj
    keep(h, i); // down_proj
    keep(h); // input_layernorm
    keep(h); // post_attention_layernorm
  }
  keep(h); // norm
  if (!m.tiedEmbeddings) keep(padTo(m.vocabSize + extra, LORA_VOCAB_PADDING), h); // lm_head

  if (maxLoras > 0 && maxLoraRank > 0) {
    const r = maxLoraRank;
    const n = maxLoras;
    if (lora.embeddingLora) {
      keep(n, extra, h); // embeddings_tensors
      keep(n, m.vocabSize + extra, r); // lora_a_stacked
      keep(n, h, r); // lora_b_stacked
    }
    for (let layer = 0; layer < m.layers; layer++) {
      for (let s = 0; s < 3; s++) keep(n, r, h); // qkv_proj: lora_a per slice
      keep(n, q, r);
      keep(n, kv, r);
      keep(n, kv, r); // qkv_proj: lora_b per slice
      keep(n, r, q);
      keep(n, h, r); // o_proj
      keep(n, r, h);
      keep(n, r, h);
      keep(n, i, r);
      keep(n, i, r); // gate_up_proj
      keep(n, r, i);
      keep(n, h, r); // down_proj
    }
    if (lora.embeddingLora) {
      keep(n, r, h); // LM head lora_a
      keep(n, padTo(m.vocabSize + extra, LORA_VOCAB_PADDING), r); // LM head lora_b
      keep(n, extra, h); // LM head embeddings_tensors
    }
  }
  allocator.emptyCache();
  return { tensorBytes, reservedBytes: allocator.reservedBytes };
}

/**
 * RotaryEmbedding._compute_cos_sin_cache on the GPU: positions x frequencies in float32, their
 * cosines and sines, the two concatenated, then cast to the model's dtype. Only the cast stays.
 */
function rotaryCache(
  allocator: CachingAllocator,
  m: ModelShape,
  kept: (bytes: number) => void,
): void {
  const positions = m.maxPositionEmbeddings;
  const half = m.headDim / 2;
  const temporaries: Allocation[] = [
    allocator.alloc(half * 4), // inv_freq
    allocator.alloc(positions * 4), // t
    allocator.alloc(positions * half * 4), // freqs
    allocator.alloc(positions * half * 4), // cos
    allocator.alloc(positions * half * 4), // sin
  ];
  const float32Cache = allocator.alloc(positions * m.headDim * 4);
  for (const t of temporaries) allocator.free(t);
  const bytes = positions * m.headDim * m.dtypeBytes;
  allocator.alloc(bytes);
  kept(bytes);
  allocator.free(float32Cache);
}
