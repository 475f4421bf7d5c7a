/**
 * PyTorch's CUDA caching allocator as vLLM 0.8.5 runs it (torch 2.6, default settings:
 * c10/cuda/CUDACachingAllocator.cpp). vLLM sizes the KV cache from what CUDA reports in use
 * after the profile run and `torch.cuda.empty_cache()`, and that includes every segment that
 * still holds a live tensor, free gaps included. The LoRA slot buffers come in sizes that leave
 * such gaps: on the measured KV rows they explain up to 0.93 GiB (Qwen) that a byte count misses.
 */

const MIN_BLOCK = 512; // kMinBlockSize: every request is rounded up to a multiple of this
const SMALL_SIZE = 1 << 20; // kSmallSize: requests up to 1 MiB come from the small pool
const SMALL_SEGMENT = 2 << 20; // kSmallBuffer: small-pool segments are 2 MiB
const LARGE_SEGMENT = 20 << 20; // kLargeBuffer: requests under 10 MiB share 20 MiB segments
const MIN_LARGE_ALLOC = 10 << 20; // kMinLargeAlloc
const ROUND_LARGE = 2 << 20; // kRoundLarge: larger requests get their own segment, to 2 MiB

interface Block {
  segment: number;
  address: number;
  size: number;
  small: boolean;
  free: boolean;
  prev: Block | undefined;
  next: Block | undefined;
}

/** A live allocation, to pass back to free(). */
export type Allocation = Readonly<{ block: unknown }>;

const roundSize = (bytes: number) =>
  bytes < MIN_BLOCK ? MIN_BLOCK : Math.ceil(bytes / MIN_BLOCK) * MIN_BLOCK;

const segmentSize = (size: number) =>
  size <= SMALL_SIZE
    ? SMALL_SEGMENT
    : size < MIN_LARGE_ALLOC
      ? LARGE_SEGMENT
      : Math.ceil(size / ROUND_LARGE) * ROUND_LARGE;

export class CachingAllocator {
  /** Free blocks of each pool; best fit is the smallest that holds the request, then the lowest address. */
  private readonly freeBlocks: { small: Block[]; large: Block[] } = { small: [], large: [] };
  private segments = 0;
  private nextAddress = 0;
  /** Bytes CUDA has handed the allocator (cudaMalloc'd segments not yet released). */
  reservedBytes = 0;
  /** Bytes of live blocks, as torch's allocated_bytes counts them (rounded, unsplit tails included). */
  allocatedBytes = 0;

  alloc(bytes: number): Allocation {
    if (bytes <= 0) return { block: undefined }; // torch allocates nothing for an empty tensor
    const size = roundSize(bytes);
    const small = size <= SMALL_SIZE;
    const pool = small ? this.freeBlocks.small : this.freeBlocks.large;
    let best: Block | undefined;
    for (const b of pool)
      if (
        b.size >= size &&
        (!best || b.size < best.size || (b.size === best.size && b.address < best.address))
      )
        best = b;
    if (best) pool.splice(pool.indexOf(best), 1);
    else {
      const bytesOfSegment = segmentSize(size);
      best = {
        segment: this.segments++,
        address: this.nextAddress,
        size: bytesOfSegment,
        small,
        free: true,
        prev: undefined,
        next: undefined,
      };
      this.nextAddress += bytesOfSegment;
      this.reservedBytes += bytesOfSegment;
    }
    const remaining = best.size - size;
    // should_split: small blocks split down to 512 B, large ones only above 1 MiB
    if (small ? remaining >= MIN_BLOCK : remaining > SMALL_SIZE) {
      const rest: Block = {
        segment: best.segment,
        address: best.address + size,
        size: remaining,
        small,
        free: true,
        prev: best,
        next: best.next,
      };
      if (best.next) best.next.prev = rest;
      best.next = rest;
      best.size = size;
      pool.push(rest);
    }
    best.free = false;
    this.allocatedBytes += best.size;
    return { block: best };
  }

  free(allocation: Allocation): void {
    const block = allocation.block as Block | undefined;
    if (!block) return;
    if (block.free) throw new Error('double free');
    this.allocatedBytes -= block.size;
    block.free = true;
    const pool = block.small ? this.freeBlocks.small : this.freeBlocks.large;
    // Merge with free neighbours in the same segment, as free_block does.
    for (const neighbour of [block.prev, block.next]) {
      if (!neighbour?.free) continue;
      pool.splice(pool.indexOf(neighbour), 1);
      if (neighbour === block.prev) {
        block.address = neighbour.address;
        block.prev = neighbour.prev;
        if (neighbour.prev) neighbour.prev.next = block;
      } else {
        block.next = neighbour.next;
        if (neighbour.next) neighbour.next.prev = block;
      }
      block.size += neighbour.size;
    }
    pool.push(block);
  }

  /** torch.cuda.empty_cache(): releases every segment that holds no live block. */
  emptyCache(): void {
    for (const key of ['small', 'large'] as const) {
      const kept: Block[] = [];
      for (const b of this.freeBlocks[key]) {
        if (!b.prev && !b.next) this.reservedBytes -= b.size;
        else kept.push(b);
      }
      this.freeBlocks[key] = kept;
    }
  }
}
