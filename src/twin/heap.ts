/**
 * Binary min-heap of small integer ids (adapters), ordered by an external key array that the
 * caller owns. `update(id)` restores order after the caller changed `keys[id]`. Used for the
 * FCFS merge of per-adapter waiting queues, so each operation is O(log adapters) and allocation-free.
 */
export class IndexedMinHeap {
  private readonly heap: Int32Array;
  private readonly pos: Int32Array;
  private count = 0;

  constructor(
    capacity: number,
    private readonly keys: Float64Array,
  ) {
    this.heap = new Int32Array(capacity);
    this.pos = new Int32Array(capacity).fill(-1);
  }

  get size(): number {
    return this.count;
  }

  has(id: number): boolean {
    return this.pos[id]! >= 0;
  }

  /** The id with the smallest key; only valid when size > 0. */
  top(): number {
    return this.heap[0]!;
  }

  clear(): void {
    for (let i = 0; i < this.count; i++) this.pos[this.heap[i]!] = -1;
    this.count = 0;
  }

  push(id: number): void {
    const i = this.count++;
    this.heap[i] = id;
    this.pos[id] = i;
    this.siftUp(i);
  }

  update(id: number): void {
    const i = this.pos[id]!;
    this.siftUp(i);
    this.siftDown(this.pos[id]!);
  }

  remove(id: number): void {
    const i = this.pos[id]!;
    const last = --this.count;
    this.pos[id] = -1;
    if (i === last) return;
    const moved = this.heap[last]!;
    this.heap[i] = moved;
    this.pos[moved] = i;
    this.siftUp(i);
    this.siftDown(this.pos[moved]!);
  }

  private siftUp(start: number): void {
    const { heap, pos, keys } = this;
    let i = start;
    const id = heap[i]!;
    const k = keys[id]!;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const pid = heap[parent]!;
      if (keys[pid]! <= k) break;
      heap[i] = pid;
      pos[pid] = i;
      i = parent;
    }
    heap[i] = id;
    pos[id] = i;
  }

  private siftDown(start: number): void {
    const { heap, pos, keys } = this;
    const n = this.count;
    let i = start;
    const id = heap[i]!;
    const k = keys[id]!;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= n) break;
      const right = left + 1;
      let child = left;
      if (right < n && keys[heap[right]!]! < keys[heap[left]!]!) child = right;
      const cid = heap[child]!;
      if (keys[cid]! >= k) break;
      heap[i] = cid;
      pos[cid] = i;
      i = child;
    }
    heap[i] = id;
    pos[id] = i;
  }
}

/** Fenwick tree of counts over request ids: how many waiting requests precede a given one. */
export class Fenwick {
  private readonly tree: Int32Array;
  constructor(private readonly n: number) {
    this.tree = new Int32Array(n + 1);
  }
  add(index: number, delta: number): void {
    for (let i = index + 1; i <= this.n; i += i & -i) this.tree[i]! += delta;
  }
  /** Sum over ids 0..index inclusive. */
  prefix(index: number): number {
    let s = 0;
    for (let i = index + 1; i > 0; i -= i & -i) s += this.tree[i]!;
    return s;
  }
}
