import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CachingAllocator } from '../src/derive/allocator.js';
import { readModelConfig } from '../src/derive/config.js';
import { derive, DeriveError, readDeriveCatalog } from '../src/derive/index.js';
import {
  activationPeakBytes,
  kvBytesPerToken,
  kvCacheTable,
  loraBytesPerSlot,
  loraBytesPerSlotRank,
  memoryAccount,
  weightBytes,
  type ServerFlags,
} from '../src/derive/memory.js';
import { residency } from '../src/derive/residency.js';
import { loadProfile, PACKAGE_ROOT } from '../src/profiles/store.js';
import { searchOptimum } from '../src/search/index.js';
import { kvCacheTokens, vllmStarts } from '../src/twin/index.js';

const MODELS = join(PACKAGE_ROOT, 'models');
const catalog = readDeriveCatalog(MODELS);
const KNOWN = Object.keys(catalog.architectures.architectures);
const config = (id: string) =>
  JSON.parse(readFileSync(join(MODELS, 'configs', id, 'config.json'), 'utf8')) as Record<
    string,
    unknown
  >;
const shapeOf = (id: string) => {
  const read = readModelConfig(config(id), KNOWN);
  if (!('shape' in read)) throw new Error(JSON.stringify(read.issues));
  return read.shape;
};
const LLAMA = shapeOf('llama-3.1-8b-instruct');
const QWEN = shapeOf('qwen-2.5-7b-instruct');
const WITH_EMBEDDING = { embeddingLora: true, extraVocabSize: 256 };
const WITHOUT_EMBEDDING = { embeddingLora: false, extraVocabSize: 256 };
const MEASURED_FLAGS: ServerFlags = {
  gpuMemoryUtilization: 0.9,
  maxModelLen: 32768,
  maxNumBatchedTokens: 2048,
  maxNumSeqs: 2048,
  blockSize: 16,
};
const measured = [
  loadProfile('h100-64gb/llama-3.1-8b-instruct'),
  loadProfile('h100-64gb/qwen-2.5-7b-instruct'),
];

describe("the memory account follows vLLM 0.8.5's, term by term (hand-computed)", () => {
  it('KV bytes per token: keys and values of every layer', () => {
    expect(kvBytesPerToken(LLAMA)).toBe(2 * 32 * 8 * 128 * 2); // 131072
    expect(kvBytesPerToken(QWEN)).toBe(2 * 28 * 4 * 128 * 2); // 57344
  });

  it('weights: embedding, LM head, 28 layers, norms and the rotary cache of Qwen2.5-7B', () => {
    const embedding = 152064 * 3584; // 152064 is already a multiple of 256
    const layer = 3584 * (3584 + 2 * 512) + 3584 * 3584 + 3 * 3584 * 18944;
    const norms = (2 * 28 + 1) * 3584;
    const rotary = 32768 * 128;
    expect(weightBytes(QWEN, WITHOUT_EMBEDDING, 0)).toBe(
      (2 * embedding + 28 * layer + norms + rotary) * 2,
    );
    // Embedding LoRA grows the embedding by 256 rows per slot: 8 slots of Llama, 2048 rows.
    expect(weightBytes(LLAMA, WITH_EMBEDDING, 8) - weightBytes(LLAMA, WITH_EMBEDDING, 0)).toBe(
      2048 * 4096 * 2,
    );
  });

  it('LoRA slot buffers per slot and rank: lora_a and lora_b of every packed slice', () => {
    // q/k/v: three lora_a of 3584 and lora_b of 3584 + 512 + 512; o: 3584 + 3584;
    // gate/up: two lora_a of 3584 and lora_b of 2 x 18944; down: 18944 + 3584.
    const qwenLayer = 3 * 3584 + 4608 + 7168 + (7168 + 37888) + (18944 + 3584);
    expect(loraBytesPerSlotRank(QWEN, WITHOUT_EMBEDDING)).toBe(28 * qwenLayer * 2);
    // Llama adds the embedding (vocab + 256 extra, then hidden) and the LM head (hidden, then
    // the padded vocab + 256).
    const llamaLayer = 3 * 4096 + 6144 + 8192 + (8192 + 28672) + (14336 + 4096);
    expect(loraBytesPerSlotRank(LLAMA, WITH_EMBEDDING)).toBe(
      (32 * llamaLayer + (128512 + 4096) + (4096 + 128512)) * 2,
    );
    // Per slot whatever the rank: two extra-vocabulary embedding tensors and the extra rows.
    expect(loraBytesPerSlot(LLAMA, WITH_EMBEDDING)).toBe(3 * 256 * 4096 * 2);
    expect(loraBytesPerSlot(QWEN, WITHOUT_EMBEDDING)).toBe(0);
  });

  it("the activation peak is the sampler's logits over min(max_num_seqs, max_num_batched_tokens) rows", () => {
    expect(activationPeakBytes(QWEN, WITHOUT_EMBEDDING, MEASURED_FLAGS)).toBe(2048 * 152064 * 14);
    // With 8 sequences the dummy forward pass's MLP output is the larger transient.
    expect(activationPeakBytes(QWEN, WITHOUT_EMBEDDING, { ...MEASURED_FLAGS, maxNumSeqs: 8 })).toBe(
      2048 * 3 * 18944 * 2,
    );
  });

  it('what remains of the budget is the KV cache, in whole blocks of 16 tokens', () => {
    const total = 63.43 * 2 ** 30;
    const other = 2 ** 30;
    const a = memoryAccount(QWEN, WITHOUT_EMBEDDING, MEASURED_FLAGS, total, other, 64, 16);
    const kvBytes =
      total * 0.9 -
      weightBytes(QWEN, WITHOUT_EMBEDDING, 64) -
      64 * 16 * loraBytesPerSlotRank(QWEN, WITHOUT_EMBEDDING) -
      2048 * 152064 * 14 -
      a.allocatorGapBytes -
      other;
    expect(a.kvCacheBytes).toBeCloseTo(kvBytes, 0);
    expect(a.kvCacheTokens).toBe(Math.floor(kvBytes / (16 * 57344)) * 16);
  });

  it("the allocator's gaps are what its segments hold beyond the tensors: weights and slots counted exactly", () => {
    for (const [shape, lora] of [
      [QWEN, WITHOUT_EMBEDDING],
      [LLAMA, WITH_EMBEDDING],
    ] as const) {
      for (const [maxLoras, rank] of [
        [0, 0],
        [1, 8],
        [64, 16],
        [384, 8],
      ] as const) {
        const r = residency(shape, lora, maxLoras, rank);
        const a = memoryAccount(shape, lora, MEASURED_FLAGS, 63.43 * 2 ** 30, 0, maxLoras, rank);
        // The replay allocates exactly the tensors the byte count adds up.
        expect(r.tensorBytes).toBe(a.weightBytes + a.loraBytes);
        expect(r.reservedBytes).toBeGreaterThanOrEqual(r.tensorBytes);
        expect(a.allocatorGapBytes).toBe(r.reservedBytes - r.tensorBytes);
      }
    }
  });
});

describe("PyTorch's caching allocator, as vLLM 0.8.5's memory profile sees it (hand-computed)", () => {
  const MiB = 2 ** 20;
  it('requests under 10 MiB share 20 MiB segments; larger ones get their own, rounded to 2 MiB', () => {
    const a = new CachingAllocator();
    a.alloc(7 * MiB);
    a.alloc(7 * MiB);
    expect(a.reservedBytes).toBe(20 * MiB); // one segment, 6 MiB of it a gap
    a.alloc(7 * MiB); // 6 MiB left is too small: a second segment
    expect(a.reservedBytes).toBe(40 * MiB);
    const b = new CachingAllocator();
    b.alloc(14 * MiB + 1);
    expect(b.reservedBytes).toBe(16 * MiB);
    expect(b.allocatedBytes).toBe(14 * MiB + 512); // rounded to 512 B, tail over 1 MiB split off
  });

  it('small requests round to 512 B inside 2 MiB segments', () => {
    const a = new CachingAllocator();
    a.alloc(1000);
    a.alloc(1);
    expect(a.allocatedBytes).toBe(1024 + 512);
    expect(a.reservedBytes).toBe(2 * MiB);
  });

  it('best fit takes the smallest free block that holds the request, and frees merge', () => {
    const a = new CachingAllocator();
    const x = a.alloc(3 * MiB);
    a.alloc(2 * MiB);
    const y = a.alloc(5 * MiB);
    a.alloc(2 * MiB); // 20 MiB segment: 3 | 2 | 5 | 2 | 8 free
    a.free(x);
    a.free(y);
    a.alloc(3 * MiB); // fits the freed 3 MiB exactly: no new segment, the 5 and 8 stay free
    a.alloc(7 * MiB); // the freed 5 MiB is too small: the 8 MiB tail
    a.alloc(5 * MiB); // the freed 5 MiB hole
    expect(a.reservedBytes).toBe(20 * MiB);
    // The 7 MiB request holds the whole 8 MiB tail: a 1 MiB rest is not split off.
    expect(a.allocatedBytes).toBe(20 * MiB);
  });

  it('empty_cache releases only segments that hold no live block', () => {
    const a = new CachingAllocator();
    const first = a.alloc(7 * MiB);
    const second = a.alloc(7 * MiB);
    const own = a.alloc(12 * MiB);
    a.free(first);
    a.free(own);
    a.emptyCache();
    expect(a.reservedBytes).toBe(20 * MiB); // the shared segment still holds `second`
    a.free(second);
    a.emptyCache();
    expect(a.reservedBytes).toBe(0);
  });
});

describe('configs the derivation cannot handle are refused by field', () => {
  const issuesOf = (c: unknown) => {
    const read = readModelConfig(c, KNOWN);
    return 'issues' in read ? read.issues : [];
  };
  it('names the field of a mixture of experts, sliding-window attention and a multimodal config', () => {
    expect(issuesOf(config('qwen3-30b-a3b'))[0]?.field).toBe('config.num_experts');
    expect(issuesOf(config('gemma-2-9b-it'))[0]?.field).toBe('config.sliding_window');
    expect(
      issuesOf({ ...config('qwen3-8b'), vision_config: { hidden_size: 1152 } })[0]?.field,
    ).toBe('config.vision_config');
  });
  it("accepts Qwen2's sliding_window when use_sliding_window is false, and names missing or unknown fields", () => {
    expect(issuesOf(config('qwen-2.5-14b-instruct'))).toEqual([]);
    const noHidden = config('mistral-7b-instruct-v0.3');
    delete noHidden.hidden_size;
    expect(issuesOf(noHidden)[0]?.field).toBe('config.hidden_size');
    expect(
      issuesOf({ ...config('mistral-7b-instruct-v0.3'), architectures: ['FalconForCausalLM'] })[0]
        ?.field,
    ).toBe('config.architectures');
    expect(issuesOf({ ...config('qwen3-8b'), torch_dtype: 'float32' })[0]?.field).toBe(
      'config.torch_dtype',
    );
  });
  it('derive() throws the issues, with an unknown GPU and model named too', () => {
    const attempt = () => derive({ gpu: 'tpu-v5', model: 'gpt-5' }, catalog, measured);
    expect(attempt).toThrow(DeriveError);
    try {
      attempt();
    } catch (e) {
      expect((e as DeriveError).issues.map((i) => i.field)).toEqual(['gpu', 'model']);
    }
  });
});

describe('a derived profile', () => {
  it('reads its KV cache per slot count from the replayed accounting, which ends where vLLM would not start', () => {
    const p = derive(
      { gpu: 'h100-64gb', model: 'qwen-2.5-7b-instruct', flags: { maxModelLen: 32768 } },
      catalog,
      measured,
    );
    const m = p.derivation as { memoryGiB: { cudaTotal: number }; factors: { otherGiB: number } };
    const table = kvCacheTable(
      QWEN,
      WITHOUT_EMBEDDING,
      MEASURED_FLAGS,
      m.memoryGiB.cudaTotal * 2 ** 30,
      m.factors.otherGiB * 2 ** 30,
      64,
    );
    expect(p.kvCache.accounted?.find((a) => a.maxLoraRank === 64)?.kvCacheTokens).toEqual(table);
    expect(kvCacheTokens(p, 7, 64)).toBe(table[6]);
    // The last entry is the first slot count whose cache cannot hold one 32k sequence.
    expect(table.at(-1)).toBeLessThan(32768);
    expect(table.at(-2)).toBeGreaterThanOrEqual(32768);
    expect(vllmStarts(p, table.length, 64)).toBe(false);
    expect(vllmStarts(p, table.length + 100, 64)).toBe(false);
    expect(vllmStarts(p, table.length - 1, 64)).toBe(true);
  });

  it('is the same bit for bit from the same inputs, and its id hashes them', () => {
    const request = { gpu: 'a100-80gb-sxm', model: 'qwen3-8b', flags: { maxModelLen: 16384 } };
    const a = derive(request, catalog, measured);
    const b = derive(structuredClone(request), readDeriveCatalog(MODELS), [...measured].reverse());
    expect(JSON.stringify(a)).toBe(JSON.stringify(b));
    expect(a.id).toMatch(/^a100-80gb-sxm\/qwen3-8b@[0-9a-f]{12}$/);
    expect(a.evidence).toBe('derived');
    const other = derive({ ...request, flags: { maxModelLen: 8192 } }, catalog, measured);
    expect(other.id).not.toBe(a.id);
  });

  it('refuses to start where vLLM would: an 8B model with a 128k context on a 24 GB L4', () => {
    const p = derive({ gpu: 'l4', model: 'llama-3.1-8b-instruct' }, catalog, measured);
    // ~22 GiB of CUDA memory x 0.9, less 15 GiB of weights and the sampler's peak, leaves
    // under the 16 GiB one 131072-token sequence needs.
    expect(kvCacheTokens(p, 8, 16)).toBeLessThan(131072);
    expect(vllmStarts(p, 8, 16)).toBe(false);
    // With an 8k context it starts.
    const short = derive(
      { gpu: 'l4', model: 'llama-3.1-8b-instruct', flags: { maxModelLen: 8192 } },
      catalog,
      measured,
    );
    expect(vllmStarts(short, 8, 16)).toBe(true);
    // A 14B model's weights alone exceed an A10G: no KV cache at all.
    const big = derive({ gpu: 'a10g', model: 'qwen-2.5-14b-instruct' }, catalog, measured);
    expect(kvCacheTokens(big, 1, 8)).toBe(0);
  });

  it('a search on a profile that cannot start says by how much, and what would start it', async () => {
    const p = derive({ gpu: 'l4', model: 'llama-3.1-8b-instruct' }, catalog, measured);
    const big = derive({ gpu: 'a10g', model: 'qwen-2.5-14b-instruct' }, catalog, measured);
    const never = () => Promise.reject(new Error('nothing here starts, so nothing is simulated'));
    const workload = { rates: [0.1], ranks: [16] };
    const long = await searchOptimum(p, { workload }, never);
    expect(long.best).toBeNull();
    expect(long.reason).toContain(
      `with 1 slot the cache holds ${Math.floor(kvCacheTokens(p, 1, 16))} tokens, short of one 131072-token sequence; a lower --max-model-len`,
    );
    const none = await searchOptimum(big, { workload }, never);
    expect(none.reason).toContain('with 1 slot the cache holds 0 tokens');
    expect(none.reason).toContain('the weights and reserves fill the GPU');
  });

  it('of a measured model lies within the validated error of its calibrated profile: KV cache and start-up', () => {
    const expected = catalog.expectedError;
    expect(expected).toBeDefined();
    for (const calibrated of measured) {
      const derived = derive(
        {
          gpu: 'h100-64gb',
          model: calibrated.model,
          flags: { maxModelLen: calibrated.maxModelLen },
        },
        catalog,
        measured,
      );
      for (const row of calibrated.kvCache.measured) {
        if (row.kvCacheTokens === null) {
          expect(vllmStarts(derived, row.maxLoras, row.maxLoraRank)).toBe(false);
          continue;
        }
        const error = Math.abs(
          kvCacheTokens(derived, row.maxLoras, row.maxLoraRank) / row.kvCacheTokens - 1,
        );
        expect(100 * error).toBeLessThanOrEqual(expected!.kvCacheMaxAbsPct!);
      }
    }
  });
});
