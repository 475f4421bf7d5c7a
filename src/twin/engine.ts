import { generateArrivals } from './arrivals.js';
import { Fenwick, IndexedMinHeap } from './heap.js';
import { LatencyHistogram } from './histogram.js';
import type { RequestLengthSampler } from './lengths.js';
import { cpuToGpuLoadMs, loraMsPerBatchedToken, type Profile } from './profile.js';
import type { UniformSource } from './random.js';
import type { TwinConfig } from './scenario.js';

/** A steady request's first block crossing when it needs no more blocks before finishing. */
const NO_CROSSING = 0x7fffffff;
/** A request in no list of the last-token calendar. */
const UNLISTED = -2;

/** Everything one simulation needs, already resolved from a scenario. */
export interface EngineInput {
  profile: Profile;
  config: TwinConfig;
  kvCacheTokens: number;
  adapterRates: Float64Array;
  adapterRanks: Int32Array;
  lengths: RequestLengthSampler;
  arrivals: UniformSource;
  durationSeconds: number;
  /** Client-side cap on requests in flight (waiting + running); Infinity for none. */
  maxInFlight: number;
  /** Optional hook for tests: sees every engine step after scheduling. */
  observer?: StepObserver;
  /** Optional hook that sees only each step's time by cause: no queue snapshots, so it is cheap. */
  stepTimeObserver?: (step: StepTiming) => void;
}

/** A step's duration, its decode tokens and its time by cause. */
export interface StepTiming {
  durationMs: number;
  /** Requests that decode one token in this step: each of them sees the step as one ITL gap. */
  decodeSeqs: number;
  components: StepComponents;
}

export interface StepView extends StepTiming {
  time: number;
  tokenBudget: number;
  scheduledTokens: number;
  distinctAdapters: number;
  usedBlocks: number;
  totalBlocks: number;
  /** Running queue before this step's scheduling, in vLLM order. */
  runningAtStart: ReadonlyArray<number>;
  running: ReadonlyArray<number>;
  /** Waiting queue before this step's scheduling, front first. */
  waitingAtStart: ReadonlyArray<number>;
  waitingOrder: () => number[];
  preempted: ReadonlyArray<number>;
  scheduled: ReadonlyArray<number>;
  adapterOf: (request: number) => number;
}

/** A step's time by cause, in ms: the tail mechanisms the twin models. */
export interface StepComponents {
  /** Fixed cost and one decode token per running request, with the KV cache read. */
  decodeMs: number;
  /** Prompt tokens of requests seen for the first time (chunked prefill sharing the step). */
  prefillMs: number;
  /** Prompt and output tokens computed again after a preemption by recompute. */
  recomputeMs: number;
  /** LoRA kernels: slots, distinct adapters and batched tokens. */
  loraMs: number;
  /** Scheduler CPU time, growing with running requests and the waiting requests it scans. */
  schedulerMs: number;
  /** Synchronous adapter loads (disk to host, host to a GPU slot) that stall the whole step. */
  adapterLoadMs: number;
}
export type StepObserver = (step: StepView) => void;

export interface EngineOutput {
  arrivedRequests: number;
  droppedRequests: number;
  offeredTokens: number;
  completedRequests: number;
  completedInputTokens: number;
  completedOutputTokens: number;
  ttft: LatencyHistogram;
  itl: LatencyHistogram;
  /** Mean over completed requests of their gaps, as the benchmark client computes it. */
  itlMeanCompletedMs: number;
  preemptions: number;
  adapterLoads: number;
  maxWaitingRequests: number;
  meanRunningRequests: number;
  engineSteps: number;
  stepStats: StepStats;
  /** Requests waiting or running at half-window and at the end, and accepted in the second half. */
  backlogAtHalfWindow: number;
  backlogAtEnd: number;
  acceptedSecondHalf: number;
}

/** Sums over engine steps weighted by decode tokens emitted, for fitting step-time terms. */
export interface StepStats {
  decodeTokens: number;
  weightedStepMs: number;
  weightedLoraMs: number;
  weightedAdapters: number;
  weightedBatchedTokens: number;
}
export const newStepStats = (): StepStats => ({
  decodeTokens: 0,
  weightedStepMs: 0,
  weightedLoraMs: 0,
  weightedAdapters: 0,
  weightedBatchedTokens: 0,
});

/**
 * Discrete-event simulation of one vLLM 0.8.5 V1 engine serving LoRA adapters.
 * The step loop follows `vllm/v1/core/sched/scheduler.py`: running requests first (chunked
 * prefill or one decode token, preempting the last running request by recompute when no KV
 * block is free), then, if nothing was preempted, FCFS admission of waiting requests that skips
 * requests whose adapter would push the step over max_loras distinct adapters.
 *
 * Most running requests do the same thing step after step: decode one token. The running queue is
 * therefore kept in two parts. The *steady* part is its prefix of requests that decoded last step
 * and decode again now; their state is implicit (tokens generated = tokens at joining + steps
 * since), and each is visited only at its events: the step it needs a new KV block (from a ring
 * of per-step buckets, a block's worth of steps long) and the step it emits its last token (from a
 * heap ordered by step, then running order). The *explicit* part
 * (prefill chunks, requests just admitted or re-admitted) is stepped request by request as vLLM
 * does. A step costs its events, not its running requests, and the result is the same, bit for
 * bit, as visiting every request every step (test/twin-events.test.ts checks it against that
 * engine).
 */
export function runEngine(input: EngineInput): EngineOutput {
  const { profile, config, durationSeconds, adapterRanks, observer, stepTimeObserver } = input;
  const req = generateArrivals(input);
  const N = req.length;
  const A = input.adapterRates.length;
  const { prompt, output, adapter, arrival } = req;

  const blockSize = profile.blockSize;
  const totalBlocks = Math.floor(input.kvCacheTokens / blockSize);
  const maxBlocksPerRequest = Math.ceil(profile.maxModelLen / blockSize);
  const preallocate = profile.preallocateBlocks;
  const maxLoras = config.maxLoras;
  const maxNumSeqs = config.maxNumSeqs;
  const tokenBudgetPerStep = config.maxNumBatchedTokens;
  const runningCapacity = Math.min(N, maxNumSeqs) + 1;

  // Per-request state. For steady requests `generated` holds the count when they joined.
  const computed = new Int32Array(N);
  const generated = new Int32Array(N);
  const blocks = new Int32Array(N);
  const key = new Float64Array(N); // FCFS order in the waiting queue; preempted get negative keys
  const firstToken = new Float64Array(N);
  const lastToken = new Float64Array(N);
  let freeBlocks = totalBlocks;

  // The running queue is steady ++ explicit. `seq` numbers admissions: running order is seq order.
  const seq = new Int32Array(N);
  let nextSeq = 0;
  // Explicit part in vLLM order, and the requests scheduled from it in the current step.
  const running = new Int32Array(runningCapacity);
  let explicitCount = 0;
  const scheduled = new Int32Array(runningCapacity);
  const scheduledTokens = new Int32Array(runningCapacity);
  let scheduledCount = 0;

  // Steady part: join order (= running order) with lazily dropped leavers, and each request's
  // next event (a KV block or its last token) in a heap. Observers see every request every step.
  const steadyEnabled = !observer;
  const joinStep = new Int32Array(N).fill(-1); // the step a steady request joined at; -1 if not steady
  // A steady request takes 1 + preallocate blocks each time its tokens outgrow its blocks, one
  // token a step: every `period` steps. Requests are bucketed by that phase, and a bucket's blocks
  // are taken in one subtraction unless they could run short (or a request is near its cap).
  const blocksPerCrossing = preallocate + 1;
  const period = blocksPerCrossing * blockSize;
  const blockRing: number[][] = Array.from({ length: period }, () => []);
  const irregularIn = new Int32Array(period);
  const irregular = new Uint8Array(N);
  const firstCrossing = new Int32Array(N).fill(NO_CROSSING); // blocks[r] holds those before it
  const ringPos = new Int32Array(N);
  const due: number[] = [];
  // The step of each steady request's last token, in a calendar of per-step lists (a request is
  // at most its output length away), each in join order, which is running order.
  const lastStep = new Int32Array(N);
  let longestOutput = 0;
  for (let r = 0; r < N; r++) if (output[r]! > longestOutput) longestOutput = output[r]!;
  const calendar = longestOutput + 1;
  const lastHead = new Int32Array(calendar).fill(-1);
  const lastTail = new Int32Array(calendar).fill(-1);
  const lastNext = new Int32Array(N);
  const lastPrev = new Int32Array(N).fill(UNLISTED);
  const steadyOrder = new Int32Array(2 * runningCapacity + 16);
  let steadyHead = 0;
  let steadyEnd = 0;
  let steadyCount = 0;
  const steadyPerAdapter = new Int32Array(A);
  let steadyAdapterCount = 0;
  const completing = new Int32Array(runningCapacity);
  let completingCount = 0;

  // Waiting queue: per adapter, a stack of preempted requests (front) and a FIFO of arrivals,
  // linked through `waitingNext` (a request waits in one of them at most).
  const frontTop = new Int32Array(A).fill(-1);
  const backHead = new Int32Array(A).fill(-1);
  const backTail = new Int32Array(A).fill(-1);
  const waitingNext = new Int32Array(N);
  const headKey = new Float64Array(A).fill(Infinity);
  const waitingHeap = new IndexedMinHeap(A, headKey);
  // Adapters of the step with requests waiting: steady adapters' persist, the others' per step.
  const steadyWaitingHeap = new IndexedMinHeap(A, headKey);
  const extraWaitingHeap = new IndexedMinHeap(A, headKey);
  const waitingArrivals = new Fenwick(Math.max(1, N));
  let waitingCount = 0;
  let frontCount = 0;
  let nextFrontKey = -1;

  // Adapter residency: GPU slots (max_loras) and host memory (max_cpu_loras), both LRU. A steady
  // adapter is used every step, so its last use is the current step, implicitly.
  const gpuLastUse = new Float64Array(A).fill(-1);
  const gpuResident: number[] = [];
  const cpuLastUse = new Float64Array(A).fill(-1);
  const cpuResident: number[] = [];
  const loadMs = new Float64Array(A);
  for (let a = 0; a < A; a++)
    loadMs[a] = cpuToGpuLoadMs(profile, config.maxLoraRank, adapterRanks[a]!);
  const diskMs = profile.adapterLoad.diskToCpuMs;

  // Distinct adapters of the current step beyond the steady ones, in order of first use.
  const adapterStamp = new Int32Array(A).fill(-1);
  const stepAdapters = new Int32Array(Math.max(1, A));
  let extraAdapterCount = 0;

  const base = profile.stepTime.base;
  const lora = profile.stepTime.lora;
  const loraFixedMs = lora.intercept + lora.perSlot * maxLoras;
  const loraPerTokenMs = loraMsPerBatchedToken(profile, maxLoras);
  const sched = profile.scheduler;
  const stats = newStepStats();

  const ttft = new LatencyHistogram();
  const itl = new LatencyHistogram();
  let itlCompletedSum = 0;
  let itlCompletedCount = 0;
  let preemptions = 0;
  let adapterLoads = 0;
  let maxWaiting = 0;
  let runningTimeIntegral = 0;
  let steps = 0;
  let completed = 0;
  let completedIn = 0;
  let completedOut = 0;
  let dropped = 0;
  let offeredTokens = 0;
  let nextArrival = 0;
  let t = 0;
  const halfWindow = durationSeconds / 2;
  let backlogAtHalf = -1;
  let acceptedSecondHalf = 0;

  const headOf = (a: number): number => (frontTop[a]! >= 0 ? frontTop[a]! : backHead[a]!);
  const refreshHead = (a: number): void => {
    const r = headOf(a);
    headKey[a] = r >= 0 ? key[r]! : Infinity;
  };
  /** After adapter `a`'s head changed: keeps the heaps of waiting adapters in order. */
  const headChanged = (a: number): void => {
    const empty = headKey[a] === Infinity;
    if (waitingHeap.has(a)) {
      if (empty) waitingHeap.remove(a);
      else waitingHeap.update(a);
    }
    if (steadyWaitingHeap.has(a)) {
      if (empty) steadyWaitingHeap.remove(a);
      else steadyWaitingHeap.update(a);
    }
    if (extraWaitingHeap.has(a)) {
      if (empty) extraWaitingHeap.remove(a);
      else extraWaitingHeap.update(a);
    }
    if (!empty) {
      if (!waitingHeap.has(a)) waitingHeap.push(a);
      if (steadyPerAdapter[a]! > 0 && !steadyWaitingHeap.has(a)) steadyWaitingHeap.push(a);
    }
  };
  const pushBack = (r: number): void => {
    const a = adapter[r]!;
    key[r] = r;
    waitingNext[r] = -1;
    if (backTail[a]! >= 0) waitingNext[backTail[a]!] = r;
    else backHead[a] = r;
    backTail[a] = r;
    waitingArrivals.add(r, 1);
    waitingCount++;
    // Behind other waiting requests, an arrival leaves the adapter's head as it was.
    if (!waitingHeap.has(a)) {
      refreshHead(a);
      headChanged(a);
    }
  };
  const pushFront = (r: number): void => {
    const a = adapter[r]!;
    key[r] = nextFrontKey--;
    waitingNext[r] = frontTop[a]!;
    frontTop[a] = r;
    frontCount++;
    waitingCount++;
    refreshHead(a);
    headChanged(a);
  };
  /** Removes the head request of adapter `a` from the waiting queue. */
  const popHead = (a: number): void => {
    if (frontTop[a]! >= 0) {
      frontTop[a] = waitingNext[frontTop[a]!]!;
      frontCount--;
    } else {
      const r = backHead[a]!;
      waitingArrivals.add(r, -1);
      backHead[a] = waitingNext[r]!;
      if (backHead[a]! < 0) backTail[a] = -1;
    }
    waitingCount--;
    refreshHead(a);
    headChanged(a);
  };

  /**
   * KVCacheManager.allocate_slots without prefix caching, for a request holding `tokens` tokens
   * once this step's are computed: false when blocks run out.
   */
  const allocate = (r: number, tokens: number): boolean => {
    // Fast path (most decode steps): the request's last block still has room.
    if (tokens <= blocks[r]! * blockSize) return true;
    const required = Math.ceil(tokens / blockSize);
    const need = required - blocks[r]!;
    if (need > freeBlocks) return false;
    if (need > 0) {
      const take = Math.min(need + preallocate, freeBlocks, maxBlocksPerRequest - blocks[r]!);
      blocks[r]! += take;
      freeBlocks -= take;
    }
    return true;
  };
  const release = (r: number): void => {
    freeBlocks += blocks[r]!;
    blocks[r] = 0;
  };
  /** Marks a scheduled request's adapter as one of the step's (steady adapters always are). */
  const markAdapter = (a: number): void => {
    if (steadyPerAdapter[a] === 0 && adapterStamp[a] !== steps) {
      adapterStamp[a] = steps;
      stepAdapters[extraAdapterCount++] = a;
    }
  };
  const lastUseOf = (lastUse: Float64Array, a: number): number =>
    steadyPerAdapter[a]! > 0 ? steps : lastUse[a]!;
  /** Brings the adapter into host memory and a GPU slot (LRU), returning the time it costs. */
  const ensureResident = (a: number): number => {
    let cost = 0;
    if (cpuLastUse[a]! < 0) {
      if (cpuResident.length >= config.maxCpuLoras) evictLru(cpuResident, cpuLastUse, -1);
      cpuResident.push(a);
      cost += diskMs;
    }
    cpuLastUse[a] = steps;
    if (gpuLastUse[a]! < 0) {
      if (gpuResident.length >= maxLoras) evictLru(gpuResident, gpuLastUse, steps);
      gpuResident.push(a);
      cost += loadMs[a]!;
      adapterLoads++;
    }
    gpuLastUse[a] = steps;
    return cost;
  };
  /** Evicts the least recently used resident not used in step `protectStep`. */
  const evictLru = (resident: number[], lastUse: Float64Array, protectStep: number): void => {
    let best = -1;
    let bestUse = 0;
    for (let i = 0; i < resident.length; i++) {
      const u = lastUseOf(lastUse, resident[i]!);
      if (u !== protectStep && (best < 0 || u < bestUse)) {
        best = i;
        bestUse = u;
      }
    }
    const victim = resident[best]!;
    lastUse[victim] = -1;
    resident[best] = resident[resident.length - 1]!;
    resident.pop();
  };
  /** Position of `r` in the FCFS waiting order at step start (1-based), for scan-cost accounting. */
  const scanPosition = (
    r: number,
    frontAtStart: number,
    admittedArrivals: number,
    admitted: number,
  ): number => {
    if (key[r]! < 0) return admitted + 1;
    return frontAtStart + waitingArrivals.prefix(r) + admittedArrivals;
  };

  // --- the steady part of the running queue ---
  /** Tokens a steady request has generated before the current step's output. */
  const steadyGenerated = (r: number): number => generated[r]! + (steps - 1 - joinStep[r]!);
  /** Block crossings of steady request `r` up to and including step `step`. */
  const crossingsThrough = (r: number, step: number): number => {
    const c = firstCrossing[r]!;
    return step >= c ? Math.floor((step - c) / period) + 1 : 0;
  };
  /**
   * Puts steady request `r`, holding `tokens` once this step is computed, in the bucket of its next
   * block, unless its last token comes first. Its crossings are periodic unless the per-request
   * cap (max_model_len) would cut one short: then it is irregular, visited one by one.
   */
  const anchorBlocks = (r: number, tokens: number): void => {
    const room = blocks[r]! * blockSize - tokens;
    const c = steps + Math.max(0, room) + 1;
    if (c > lastStep[r]!) return;
    const bucket = c % period;
    firstCrossing[r] = c;
    ringPos[r] = blockRing[bucket]!.length;
    blockRing[bucket]!.push(r);
    const finalBlocks = blocks[r]! + blocksPerCrossing * crossingsThrough(r, lastStep[r]!);
    if (room < 0 || finalBlocks > maxBlocksPerRequest) {
      irregular[r] = 1;
      irregularIn[bucket]!++;
    }
  };
  /** Takes `r` out of its bucket, its blocks up to `step` made explicit. */
  const unanchorBlocks = (r: number, step: number): void => {
    const c = firstCrossing[r]!;
    if (c === NO_CROSSING) return;
    blocks[r]! += blocksPerCrossing * crossingsThrough(r, step);
    const bucket = blockRing[c % period]!;
    const last = bucket.pop()!;
    if (last !== r) {
      bucket[ringPos[r]!] = last;
      ringPos[last] = ringPos[r]!;
    }
    if (irregular[r]) {
      irregular[r] = 0;
      irregularIn[c % period]!--;
    }
    firstCrossing[r] = NO_CROSSING;
  };
  /** Moves `r`, which decoded this step and decodes next, from the explicit part to the steady. */
  const joinSteady = (r: number): void => {
    if (steadyEnd === steadyOrder.length) {
      let n = 0;
      for (let p = steadyHead; p < steadyEnd; p++) {
        const s = steadyOrder[p]!;
        if (joinStep[s]! >= 0) steadyOrder[n++] = s;
      }
      steadyHead = 0;
      steadyEnd = n;
    }
    steadyOrder[steadyEnd++] = r;
    steadyCount++;
    joinStep[r] = steps;
    lastStep[r] = output[r]! - generated[r]! + steps;
    const day = lastStep[r]! % calendar;
    const tail = lastTail[day]!;
    lastPrev[r] = tail;
    lastNext[r] = -1;
    if (tail >= 0) lastNext[tail] = r;
    else lastHead[day] = r;
    lastTail[day] = r;
    anchorBlocks(r, computed[r]!);
    const a = adapter[r]!;
    if (steadyPerAdapter[a]!++ === 0) {
      steadyAdapterCount++;
      if (headKey[a] !== Infinity) steadyWaitingHeap.push(a);
    }
  };
  /** Makes steady request `r` explicit again; its adapter was last used at step `lastUsed`. */
  const leaveSteady = (r: number, lastUsed: number): void => {
    joinStep[r] = -1;
    steadyCount--;
    if (lastPrev[r] !== UNLISTED) {
      const day = lastStep[r]! % calendar;
      const prev = lastPrev[r]!;
      const next = lastNext[r]!;
      if (prev >= 0) lastNext[prev] = next;
      else lastHead[day] = next;
      if (next >= 0) lastPrev[next] = prev;
      else lastTail[day] = prev;
      lastPrev[r] = UNLISTED;
    }
    unanchorBlocks(r, steps);
    const a = adapter[r]!;
    if (--steadyPerAdapter[a]! === 0) {
      steadyAdapterCount--;
      cpuLastUse[a] = lastUsed;
      gpuLastUse[a] = lastUsed;
      if (steadyWaitingHeap.has(a)) steadyWaitingHeap.remove(a);
    }
    while (steadyHead < steadyEnd && joinStep[steadyOrder[steadyHead]!]! < 0) steadyHead++;
    while (steadyEnd > steadyHead && joinStep[steadyOrder[steadyEnd - 1]!]! < 0) steadyEnd--;
  };
  /** Frees a request that emitted its last token at `t`; counts it if the window was still open. */
  const finish = (r: number): void => {
    release(r);
    if (t > durationSeconds) return;
    completed++;
    completedIn += prompt[r]!;
    completedOut += output[r]!;
    ttft.record((firstToken[r]! - arrival[r]!) * 1000);
    if (output[r]! > 1) {
      itlCompletedSum += (lastToken[r]! - firstToken[r]!) * 1000;
      itlCompletedCount += output[r]! - 1;
    }
  };
  const preemptedThisStep: number[] = [];
  /** Preempts the running queue's last request by recompute and returns it. */
  const preemptTail = (): number => {
    let victim: number;
    if (explicitCount > 0) victim = running[--explicitCount]!;
    else {
      // Its implicit state written out: it decoded last step, at the time this one starts.
      victim = steadyOrder[steadyEnd - 1]!;
      generated[victim] = steadyGenerated(victim);
      lastToken[victim] = t;
      leaveSteady(victim, steps - 1);
    }
    release(victim);
    computed[victim] = 0;
    pushFront(victim);
    preemptedThisStep.push(victim);
    preemptions++;
    return victim;
  };

  while (t < durationSeconds) {
    // Arrivals up to now join the waiting queue, unless the client has too many in flight.
    while (nextArrival < N && arrival[nextArrival]! <= t) {
      const r = nextArrival++;
      offeredTokens += prompt[r]! + output[r]!;
      if (waitingCount + steadyCount + explicitCount >= input.maxInFlight) dropped++;
      else {
        pushBack(r);
        if (arrival[r]! > halfWindow) acceptedSecondHalf++;
      }
    }
    if (backlogAtHalf < 0 && t >= halfWindow)
      backlogAtHalf = waitingCount + steadyCount + explicitCount;
    if (waitingCount > maxWaiting) maxWaiting = waitingCount;
    if (steadyCount + explicitCount === 0 && waitingCount === 0) {
      if (nextArrival >= N) break;
      t = arrival[nextArrival]!;
      continue;
    }

    // --- schedule one step ---
    steps++;
    // Steady requests all decoded one token last step, so they never outnumber the budget.
    let budget = tokenBudgetPerStep;
    const runningAtStart = observer ? Array.from(running.subarray(0, explicitCount)) : [];
    const waitingAtStart = observer ? waitingOrderSnapshot() : [];
    scheduledCount = 0;
    extraAdapterCount = 0;
    completingCount = 0;
    if (preemptedThisStep.length > 0) preemptedThisStep.length = 0;
    if (extraWaitingHeap.size > 0) extraWaitingHeap.clear();
    let decodeSeqs = 0;
    let prefillTokens = 0;
    let recomputeTokens = 0;

    // Steady requests each decode one token; only those that need a KV block are visited. When
    // blocks may run short, in running order: who gets the last ones and who is preempted matters.
    let stopped = false;
    const phase = steps % period;
    const bucket = blockRing[phase]!;
    if (bucket.length > 0) {
      if (irregularIn[phase] === 0 && bucket.length * blocksPerCrossing <= freeBlocks) {
        freeBlocks -= bucket.length * blocksPerCrossing;
      } else {
        due.length = 0;
        for (const r of bucket) due.push(r);
        for (const r of due) unanchorBlocks(r, steps - 1);
        // Insertion sort into running order: a bucket holds a few dozen requests.
        for (let i = 1; i < due.length; i++) {
          const r = due[i]!;
          let j = i - 1;
          for (; j >= 0 && seq[due[j]!]! > seq[r]!; j--) due[j + 1] = due[j]!;
          due[j + 1] = r;
        }
        for (const r of due) {
          if (joinStep[r]! < 0) continue; // preempted by one before it
          const tokens = prompt[r]! + steadyGenerated(r);
          while (!allocate(r, tokens)) {
            if (preemptTail() === r) {
              stopped = true;
              break;
            }
          }
          if (stopped) break;
          anchorBlocks(r, tokens);
        }
      }
    }
    const today = steps % calendar;
    for (let r = lastHead[today]!; r >= 0; r = lastNext[r]!) {
      completing[completingCount++] = r;
      lastPrev[r] = UNLISTED;
    }
    lastHead[today] = lastTail[today] = -1;
    decodeSeqs += steadyCount;
    budget -= steadyCount;

    let index = 0;
    while (!stopped && index < explicitCount && budget > 0) {
      const r = running[index]!;
      const n = Math.min(prompt[r]! + generated[r]! - computed[r]!, budget);
      let canSchedule = true;
      while (!allocate(r, computed[r]! + n)) {
        if (preemptTail() === r) {
          canSchedule = false;
          break;
        }
      }
      if (!canSchedule) break;
      scheduled[scheduledCount] = r;
      scheduledTokens[scheduledCount++] = n;
      // A decode step computes the one token sampled last step; anything else is (re)prefill.
      if (n === 1 && generated[r]! > 0 && computed[r]! === prompt[r]! + generated[r]! - 1)
        decodeSeqs++;
      else {
        prefillTokens += n;
        if (generated[r]! > 0) recomputeTokens += n;
      }
      budget -= n;
      markAdapter(adapter[r]!);
      index++;
    }

    let visited = 0;
    if (preemptedThisStep.length === 0 && budget > 0 && waitingCount > 0) {
      const waitingAtStart = waitingCount;
      const frontAtStart = frontCount;
      let admitted = 0;
      let admittedArrivals = 0;
      let lastConsidered = -1;
      let exhausted = false;
      // Before the step holds max_loras adapters every waiting request is eligible; after,
      // only those of the step's adapters are: the others are skipped, keeping their place.
      const startPhaseB = (): void => {
        for (let i = 0; i < extraAdapterCount; i++) {
          const a = stepAdapters[i]!;
          if (headKey[a] !== Infinity) extraWaitingHeap.push(a);
        }
      };
      let phaseB = steadyAdapterCount + extraAdapterCount >= maxLoras;
      if (phaseB) startPhaseB();
      while (budget > 0 && steadyCount + explicitCount < maxNumSeqs) {
        let a: number;
        if (!phaseB) {
          if (waitingHeap.size === 0) {
            exhausted = true;
            break;
          }
          a = waitingHeap.top();
        } else {
          const s = steadyWaitingHeap.size > 0 ? steadyWaitingHeap.top() : -1;
          const e = extraWaitingHeap.size > 0 ? extraWaitingHeap.top() : -1;
          if (s < 0 && e < 0) {
            exhausted = true;
            break;
          }
          a = e < 0 || (s >= 0 && headKey[s]! < headKey[e]!) ? s : e;
        }
        const r = headOf(a);
        lastConsidered = r;
        const n = Math.min(prompt[r]! + generated[r]! - computed[r]!, budget);
        if (!allocate(r, computed[r]! + n)) break;
        if (key[r]! >= 0) admittedArrivals++;
        admitted++;
        popHead(a);
        seq[r] = nextSeq++;
        running[explicitCount++] = r;
        scheduled[scheduledCount] = r;
        scheduledTokens[scheduledCount++] = n;
        prefillTokens += n; // waiting requests always start with a prefill
        if (generated[r]! > 0) recomputeTokens += n; // a preempted request computes again
        budget -= n;
        markAdapter(a);
        if (!phaseB && steadyAdapterCount + extraAdapterCount >= maxLoras) {
          phaseB = true;
          startPhaseB();
        }
      }
      // vLLM's scan visits (pops and re-queues) every waiting request it does not admit, until the
      // budget, max_num_seqs or the KV cache stops it: that visit count drives scheduler time.
      if (exhausted) visited = waitingAtStart;
      else if (lastConsidered >= 0) {
        visited = scanPosition(lastConsidered, frontAtStart, admittedArrivals, admitted);
      }
    }

    // --- adapters and step time ---
    // Steady adapters were used last step, so they are resident: only the others can cost a load.
    const stepAdapterCount = steadyAdapterCount + extraAdapterCount;
    let loadTimeMs = 0;
    for (let i = 0; i < extraAdapterCount; i++) loadTimeMs += ensureResident(stepAdapters[i]!);
    const runningCount = steadyCount + explicitCount;
    const kvTokensInUse = (totalBlocks - freeBlocks) * blockSize;
    const baseMs =
      base.intercept +
      base.perDecodeSeq * decodeSeqs +
      base.perPrefillToken * prefillTokens +
      (base.perKvKiloToken * kvTokensInUse) / 1000;
    const batchedTokens = decodeSeqs + prefillTokens;
    const loraMs =
      loraFixedMs + lora.perAdapterInBatch * stepAdapterCount + loraPerTokenMs * batchedTokens;
    const schedulerMs =
      sched.intercept +
      sched.perRunningRequest * runningCount +
      sched.perVisitedWaitingRequest * visited;
    const stepMs = baseMs + loraMs + schedulerMs + loadTimeMs;
    // Decode-token-weighted sums: the benchmark's mean ITL weights each step by the tokens it emits.
    stats.decodeTokens += decodeSeqs;
    stats.weightedStepMs += decodeSeqs * stepMs;
    stats.weightedLoraMs += decodeSeqs * loraMs;
    stats.weightedAdapters += decodeSeqs * stepAdapterCount;
    stats.weightedBatchedTokens += decodeSeqs * batchedTokens;

    const timing: StepTiming | undefined =
      observer || stepTimeObserver
        ? {
            durationMs: stepMs,
            decodeSeqs,
            components: {
              decodeMs: baseMs - base.perPrefillToken * prefillTokens,
              prefillMs: base.perPrefillToken * (prefillTokens - recomputeTokens),
              recomputeMs: base.perPrefillToken * recomputeTokens,
              loraMs,
              schedulerMs,
              adapterLoadMs: loadTimeMs,
            },
          }
        : undefined;
    if (timing) stepTimeObserver?.(timing);
    if (observer) {
      observer({
        ...timing!,
        time: t,
        tokenBudget: tokenBudgetPerStep,
        scheduledTokens: tokenBudgetPerStep - budget,
        distinctAdapters: stepAdapterCount,
        usedBlocks: totalBlocks - freeBlocks,
        totalBlocks,
        runningAtStart,
        waitingAtStart,
        running: Array.from(running.subarray(0, explicitCount)),
        waitingOrder: () => waitingOrderSnapshot(),
        preempted: preemptedThisStep.slice(),
        scheduled: Array.from(scheduled.subarray(0, scheduledCount)),
        adapterOf: (r) => adapter[r]!,
      });
    }

    runningTimeIntegral += runningCount * (stepMs / 1000);
    const stepStart = t;
    t += stepMs / 1000;

    // --- model output: sample tokens, finish requests ---
    // Equal inter-token gaps are recorded in one go: every steady request's gap is this step, and
    // explicit requests that decoded last step too extend the same run.
    let gapStart = steadyCount > 0 ? stepStart : -1;
    let gapCount = steadyCount;
    for (let i = 0; i < completingCount; i++) {
      const r = completing[i]!;
      leaveSteady(r, steps);
      generated[r] = output[r]!;
      lastToken[r] = t;
      finish(r);
    }
    // running[i] === scheduled[i] for i < scheduledCount (the scheduled explicit prefix, then the
    // admitted requests appended to both), so finished requests are dropped in the same pass.
    let kept = 0;
    // Requests that decoded this step and decode next, from the front: they can turn steady.
    let joining = 0;
    let frontDecodes = steadyEnabled;
    for (let i = 0; i < scheduledCount; i++) {
      const r = scheduled[i]!;
      computed[r]! += scheduledTokens[i]!;
      if (computed[r] !== prompt[r]! + generated[r]!) {
        running[kept++] = r; // a partial prefill chunk
        frontDecodes = false;
        continue;
      }
      generated[r]!++;
      if (generated[r] === 1) firstToken[r] = t;
      else if (lastToken[r] === gapStart) gapCount++;
      else {
        if (gapCount > 0) itl.record((t - gapStart) * 1000, gapCount);
        gapStart = lastToken[r]!;
        gapCount = 1;
      }
      lastToken[r] = t;
      if (generated[r]! < output[r]!) {
        running[kept++] = r;
        if (frontDecodes) joining++;
        continue;
      }
      finish(r);
    }
    if (gapCount > 0) itl.record((t - gapStart) * 1000, gapCount);
    // Running requests the budget did not reach keep their place behind the scheduled ones.
    for (let i = scheduledCount; i < explicitCount; i++) running[kept++] = running[i]!;
    explicitCount = kept;
    if (joining > 0) {
      for (let i = 0; i < joining; i++) joinSteady(running[i]!);
      for (let i = joining; i < explicitCount; i++) running[i - joining] = running[i]!;
      explicitCount -= joining;
    }
  }

  // Requests that arrived but were never looked at (the window closed first) still count as offered.
  for (; nextArrival < N; nextArrival++) {
    if (arrival[nextArrival]! <= durationSeconds)
      offeredTokens += prompt[nextArrival]! + output[nextArrival]!;
  }

  function waitingOrderSnapshot(): number[] {
    const all: number[] = [];
    for (let a = 0; a < A; a++) {
      for (let r = frontTop[a]!; r >= 0; r = waitingNext[r]!) all.push(r);
      for (let r = backHead[a]!; r >= 0; r = waitingNext[r]!) all.push(r);
    }
    return all.sort((x, y) => key[x]! - key[y]!);
  }

  const runningAtEnd = steadyCount + explicitCount;
  return {
    arrivedRequests: N,
    droppedRequests: dropped,
    offeredTokens,
    completedRequests: completed,
    completedInputTokens: completedIn,
    completedOutputTokens: completedOut,
    ttft,
    itl,
    itlMeanCompletedMs: itlCompletedCount > 0 ? itlCompletedSum / itlCompletedCount : 0,
    preemptions,
    adapterLoads,
    maxWaitingRequests: maxWaiting,
    meanRunningRequests: t > 0 ? runningTimeIntegral / t : 0,
    engineSteps: steps,
    stepStats: stats,
    // The loop also stops early once every request is done: the backlog was empty from then on.
    backlogAtHalfWindow: Math.max(0, backlogAtHalf),
    backlogAtEnd: t >= durationSeconds ? waitingCount + runningAtEnd : 0,
    acceptedSecondHalf,
  };
}
