import { z } from 'zod';
import type { FieldIssue } from '../input/errors.js';

/**
 * The shape of a dense decoder as a Hugging Face config.json states it: what vLLM's memory
 * accounting and the step costs read. Every other field of the config is ignored.
 */
export interface ModelShape {
  architecture: string;
  layers: number;
  hiddenSize: number;
  intermediateSize: number;
  attentionHeads: number;
  kvHeads: number;
  headDim: number;
  vocabSize: number;
  maxPositionEmbeddings: number;
  tiedEmbeddings: boolean;
  dtype: 'bfloat16' | 'float16';
  /** Bytes per weight and per KV element in that dtype. */
  dtypeBytes: number;
}

const positiveInt = z.number().int().positive();

/** The fields read; passthrough so that the rest of a real config is accepted as it is. */
const hfConfigSchema = z
  .object({
    architectures: z.array(z.string()).min(1),
    num_hidden_layers: positiveInt,
    hidden_size: positiveInt,
    intermediate_size: positiveInt,
    num_attention_heads: positiveInt,
    num_key_value_heads: positiveInt.optional(),
    head_dim: positiveInt.nullish(),
    vocab_size: positiveInt,
    max_position_embeddings: positiveInt,
    tie_word_embeddings: z.boolean().optional(),
    torch_dtype: z.string().optional(),
  })
  .passthrough();

/** Fields whose presence means an architecture the dense-decoder accounting would get wrong. */
const UNSUPPORTED: ReadonlyArray<{
  field: string;
  applies: (c: Record<string, unknown>) => boolean;
  why: string;
}> = [
  {
    field: 'num_experts',
    applies: (c) => typeof c.num_experts === 'number' && c.num_experts > 1,
    why: 'a mixture of experts: its weights, step costs and LoRA layers differ from a dense decoder',
  },
  {
    field: 'num_local_experts',
    applies: (c) => typeof c.num_local_experts === 'number' && c.num_local_experts > 1,
    why: 'a mixture of experts: its weights, step costs and LoRA layers differ from a dense decoder',
  },
  {
    field: 'vision_config',
    applies: (c) => c.vision_config !== undefined && c.vision_config !== null,
    why: 'a multimodal model: its encoder and its memory profile are not derived',
  },
  {
    field: 'text_config',
    applies: (c) => c.text_config !== undefined && c.text_config !== null,
    why: 'a multimodal (or nested) config: give the language model config itself',
  },
  {
    field: 'quantization_config',
    applies: (c) => c.quantization_config !== undefined && c.quantization_config !== null,
    why: 'quantized weights: the derivation counts bfloat16/float16 weights only',
  },
  {
    field: 'sliding_window',
    // Qwen2 configs carry a sliding_window size with use_sliding_window: false (full attention).
    applies: (c) =>
      typeof c.sliding_window === 'number' &&
      c.sliding_window > 0 &&
      c.use_sliding_window !== false,
    why: 'sliding-window attention: vLLM sizes its KV cache per layer type, which the derivation does not model',
  },
];

/**
 * Reads a config.json object into a ModelShape, or the issues naming each field that is missing,
 * wrong or outside what the derivation handles. `known` is the architectures it has costs for.
 */
export function readModelConfig(
  input: unknown,
  known: readonly string[],
  prefix = 'config',
): { shape: ModelShape } | { issues: FieldIssue[] } {
  if (typeof input !== 'object' || input === null || Array.isArray(input))
    return { issues: [{ field: prefix, message: 'must be a config.json object' }] };
  const raw = input as Record<string, unknown>;
  const unsupported = UNSUPPORTED.filter((u) => u.applies(raw)).map((u) => ({
    field: `${prefix}.${u.field}`,
    message: `unsupported: ${u.why}`,
  }));
  if (unsupported.length > 0) return { issues: unsupported };
  const parsed = hfConfigSchema.safeParse(raw);
  if (!parsed.success)
    return {
      issues: parsed.error.issues.map((i) => ({
        field: [prefix, ...i.path.map(String)].join('.'),
        message: i.message,
      })),
    };
  const c = parsed.data;
  const issues: FieldIssue[] = [];
  const architecture = c.architectures[0]!;
  if (!known.includes(architecture))
    issues.push({
      field: `${prefix}.architectures`,
      message: `unsupported: ${architecture} is not an architecture whose vLLM LoRA layers the derivation knows (${known.join(', ')})`,
    });
  const dtype = c.torch_dtype ?? 'bfloat16';
  if (dtype !== 'bfloat16' && dtype !== 'float16')
    issues.push({
      field: `${prefix}.torch_dtype`,
      message: `unsupported: ${dtype}; the derivation counts bfloat16 or float16 weights`,
    });
  const kvHeads = c.num_key_value_heads ?? c.num_attention_heads;
  if (c.num_attention_heads % kvHeads !== 0)
    issues.push({
      field: `${prefix}.num_key_value_heads`,
      message: `must divide num_attention_heads (${c.num_attention_heads})`,
    });
  const headDim = c.head_dim ?? c.hidden_size / c.num_attention_heads;
  if (!Number.isInteger(headDim))
    issues.push({
      field: `${prefix}.head_dim`,
      message: 'absent, and hidden_size is not a multiple of num_attention_heads',
    });
  if (issues.length > 0) return { issues };
  return {
    shape: {
      architecture,
      layers: c.num_hidden_layers,
      hiddenSize: c.hidden_size,
      intermediateSize: c.intermediate_size,
      attentionHeads: c.num_attention_heads,
      kvHeads,
      headDim,
      vocabSize: c.vocab_size,
      maxPositionEmbeddings: c.max_position_embeddings,
      tiedEmbeddings: c.tie_word_embeddings ?? false,
      dtype: dtype as 'bfloat16' | 'float16',
      dtypeBytes: 2,
    },
  };
}
