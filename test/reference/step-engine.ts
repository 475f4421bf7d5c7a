// Twin 1.2.0's engine as it was before the event-driven one: every running request visited every
// step. Kept as the oracle src/twin/engine.ts is checked against (test/twin-events.test.ts); it
// shares the engine's types and arrival generation, and only its step loop is its own.
import { Fenwick, IndexedMinHeap } from '../../src/twin/heap.js';
import { generateArrivals } from '../../src/twin/arrivals.js';
import {
  newStepStats,
  type EngineInput,
  type EngineOutput,
  type StepTiming,
} from '../../src/twin/engine.js';
import { LatencyHistogram } from '../../src/twin/histogram.js';
import { cpuToGpuLoadMs, loraMsPerBatchedToken } from '../../src/twin/profile.js';

/**
 * Discrete-event simulation of one vLLM 0.8.5 V1 engine serving LoRA adapters.
 * The step loop follows `vllm/v1/core/sched/scheduler.py`: running requests first (chunked
 * prefill or one decode token, preempting the last running request by recompute when no KV
 * block is free), then, if nothing was preempted, FCFS admission of waiting requests that skips
 * requests whose adapter would push the step over max_loras distinct adapters.
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

  // Per-request state.
  const computed = new Int32Array(N);
  const generated = new Int32Array(N);
  const blocks = new Int32Array(N);
  const key = new Float64Array(N); // FCFS order in the waiting queue; preempted get negative keys
  const firstToken = new Float64Array(N);
  const lastToken = new Float64Array(N);
  let freeBlocks = totalBlocks;

  // Running queue in vLLM order, and the requests scheduled in the current step.
  const running = new Int32Array(Math.min(N, maxNumSeqs) + 1);
  let runningCount = 0;
  const scheduled = new Int32Array(Math.min(N, maxNumSeqs) + 1);
  const scheduledTokens = new Int32Array(Math.min(N, maxNumSeqs) + 1);
  let scheduledCount = 0;

  // Waiting queue: per adapter, a stack of preempted requests (front) and a FIFO of arrivals.
  const front: number[][] = Array.from({ length: A }, () => []);
  const back: number[][] = Array.from({ length: A }, () => []);
  const backHead = new Int32Array(A);
  const headKey = new Float64Array(A).fill(Infinity);
  const waitingHeap = new IndexedMinHeap(A, headKey);
  const memberHeap = new IndexedMinHeap(A, headKey);
  const waitingArrivals = new Fenwick(Math.max(1, N));
  let waitingCount = 0;
  let frontCount = 0;
  let nextFrontKey = -1;

  // Adapter residency: GPU slots (max_loras) and host memory (max_cpu_loras), both LRU.
  const gpuLastUse = new Float64Array(A).fill(-1);
  const gpuResident: number[] = [];
  const cpuLastUse = new Float64Array(A).fill(-1);
  const cpuResident: number[] = [];
  const loadMs = new Float64Array(A);
  for (let a = 0; a < A; a++)
    loadMs[a] = cpuToGpuLoadMs(profile, config.maxLoraRank, adapterRanks[a]!);
  const diskMs = profile.adapterLoad.diskToCpuMs;

  // Distinct adapters of the current step.
  const adapterStamp = new Int32Array(A).fill(-1);
  const stepAdapters = new Int32Array(Math.max(1, A));
  let stepAdapterCount = 0;

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

  const refreshHead = (a: number): void => {
    const f = front[a]!;
    const b = back[a]!;
    const h = backHead[a]!;
    headKey[a] = f.length > 0 ? key[f[f.length - 1]!]! : h < b.length ? key[b[h]!]! : Infinity;
  };
  const headOf = (a: number): number => {
    const f = front[a]!;
    return f.length > 0 ? f[f.length - 1]! : back[a]![backHead[a]!]!;
  };
  const pushBack = (r: number): void => {
    const a = adapter[r]!;
    key[r] = r;
    back[a]!.push(r);
    waitingArrivals.add(r, 1);
    waitingCount++;
    if (!waitingHeap.has(a)) {
      refreshHead(a);
      waitingHeap.push(a);
    }
  };
  const pushFront = (r: number): void => {
    const a = adapter[r]!;
    key[r] = nextFrontKey--;
    front[a]!.push(r);
    frontCount++;
    waitingCount++;
    refreshHead(a);
    if (waitingHeap.has(a)) waitingHeap.update(a);
    else waitingHeap.push(a);
  };
  /** Removes the head request of adapter `a` from the waiting queue. */
  const popHead = (a: number): void => {
    const f = front[a]!;
    if (f.length > 0) {
      f.pop();
      frontCount--;
    } else {
      const b = back[a]!;
      const r = b[backHead[a]!]!;
      waitingArrivals.add(r, -1);
      backHead[a]!++;
      // Compact the FIFO now and then so the consumed prefix does not grow without bound.
      if (backHead[a]! > 1024 && backHead[a]! * 2 > b.length) {
        b.splice(0, backHead[a]!);
        backHead[a] = 0;
      }
    }
    waitingCount--;
    refreshHead(a);
    const empty = headKey[a] === Infinity;
    if (empty) waitingHeap.remove(a);
    else waitingHeap.update(a);
    if (memberHeap.has(a)) {
      if (empty) memberHeap.remove(a);
      else memberHeap.update(a);
    }
  };

  /** KVCacheManager.allocate_slots without prefix caching: false when blocks run out. */
  const allocate = (r: number, newTokens: number): boolean => {
    const tokens = computed[r]! + newTokens;
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
  const markAdapter = (a: number): void => {
    if (adapterStamp[a] !== steps) {
      adapterStamp[a] = steps;
      stepAdapters[stepAdapterCount++] = a;
    }
  };
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
    for (let i = 0; i < resident.length; i++) {
      const u = lastUse[resident[i]!]!;
      if (u !== protectStep && (best < 0 || u < lastUse[resident[best]!]!)) best = i;
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

  const preemptedThisStep: number[] = [];

  while (t < durationSeconds) {
    // Arrivals up to now join the waiting queue, unless the client has too many in flight.
    while (nextArrival < N && arrival[nextArrival]! <= t) {
      const r = nextArrival++;
      offeredTokens += prompt[r]! + output[r]!;
      if (waitingCount + runningCount >= input.maxInFlight) dropped++;
      else {
        pushBack(r);
        if (arrival[r]! > halfWindow) acceptedSecondHalf++;
      }
    }
    if (backlogAtHalf < 0 && t >= halfWindow) backlogAtHalf = waitingCount + runningCount;
    if (waitingCount > maxWaiting) maxWaiting = waitingCount;
    if (runningCount === 0 && waitingCount === 0) {
      if (nextArrival >= N) break;
      t = arrival[nextArrival]!;
      continue;
    }

    // --- schedule one step ---
    steps++;
    const runningAtStart = observer ? Array.from(running.subarray(0, runningCount)) : [];
    const waitingAtStart = observer ? waitingOrderSnapshot() : [];
    let budget = tokenBudgetPerStep;
    scheduledCount = 0;
    stepAdapterCount = 0;
    preemptedThisStep.length = 0;
    let decodeSeqs = 0;
    let prefillTokens = 0;
    let recomputeTokens = 0;

    let index = 0;
    while (index < runningCount && budget > 0) {
      const r = running[index]!;
      const n = Math.min(prompt[r]! + generated[r]! - computed[r]!, budget);
      let canSchedule = true;
      while (!allocate(r, n)) {
        const victim = running[--runningCount]!;
        release(victim);
        computed[victim] = 0;
        pushFront(victim);
        preemptedThisStep.push(victim);
        preemptions++;
        if (victim === r) {
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
      let phaseB = stepAdapterCount >= maxLoras;
      if (phaseB) {
        memberHeap.clear();
        for (let i = 0; i < stepAdapterCount; i++) {
          const a = stepAdapters[i]!;
          if (headKey[a] !== Infinity) memberHeap.push(a);
        }
      }
      while (budget > 0 && runningCount < maxNumSeqs) {
        // Before the step holds max_loras adapters every waiting request is eligible; after,
        // only those of the step's adapters are: the others are skipped, keeping their place.
        const heap = phaseB ? memberHeap : waitingHeap;
        if (heap.size === 0) {
          exhausted = true;
          break;
        }
        const a = heap.top();
        const r = headOf(a);
        lastConsidered = r;
        const n = Math.min(prompt[r]! + generated[r]! - computed[r]!, budget);
        if (!allocate(r, n)) break;
        if (key[r]! >= 0) admittedArrivals++;
        admitted++;
        popHead(a);
        running[runningCount++] = r;
        scheduled[scheduledCount] = r;
        scheduledTokens[scheduledCount++] = n;
        prefillTokens += n; // waiting requests always start with a prefill
        if (generated[r]! > 0) recomputeTokens += n; // a preempted request computes again
        budget -= n;
        markAdapter(a);
        if (!phaseB && stepAdapterCount >= maxLoras) {
          phaseB = true;
          memberHeap.clear();
          for (let i = 0; i < stepAdapterCount; i++) {
            const m = stepAdapters[i]!;
            if (headKey[m] !== Infinity) memberHeap.push(m);
          }
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
    let loadTimeMs = 0;
    for (let i = 0; i < stepAdapterCount; i++) loadTimeMs += ensureResident(stepAdapters[i]!);
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
        running: Array.from(running.subarray(0, runningCount)),
        waitingOrder: () => waitingOrderSnapshot(),
        preempted: preemptedThisStep.slice(),
        scheduled: Array.from(scheduled.subarray(0, scheduledCount)),
        adapterOf: (r) => adapter[r]!,
      });
    }

    runningTimeIntegral += runningCount * (stepMs / 1000);
    t += stepMs / 1000;

    // --- model output: sample tokens, finish requests ---
    // running[i] === scheduled[i] for i < scheduledCount (the scheduled running prefix, then the
    // admitted requests appended to both), so finished requests are dropped in the same pass.
    let kept = 0;
    // Most requests decoded last step too, so their gaps are equal: record equal gaps in one go.
    let gapStart = -1;
    let gapCount = 0;
    for (let i = 0; i < scheduledCount; i++) {
      const r = scheduled[i]!;
      computed[r]! += scheduledTokens[i]!;
      if (computed[r] !== prompt[r]! + generated[r]!) {
        running[kept++] = r; // a partial prefill chunk
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
        continue;
      }
      release(r);
      if (t <= durationSeconds) {
        completed++;
        completedIn += prompt[r]!;
        completedOut += output[r]!;
        ttft.record((firstToken[r]! - arrival[r]!) * 1000);
        if (output[r]! > 1) {
          itlCompletedSum += (lastToken[r]! - firstToken[r]!) * 1000;
          itlCompletedCount += output[r]! - 1;
        }
      }
    }
    if (gapCount > 0) itl.record((t - gapStart) * 1000, gapCount);
    // Running requests the budget did not reach keep their place behind the scheduled ones.
    for (let i = scheduledCount; i < runningCount; i++) running[kept++] = running[i]!;
    runningCount = kept;
  }

  // Requests that arrived but were never looked at (the window closed first) still count as offered.
  for (; nextArrival < N; nextArrival++) {
    if (arrival[nextArrival]! <= durationSeconds)
      offeredTokens += prompt[nextArrival]! + output[nextArrival]!;
  }

  function waitingOrderSnapshot(): number[] {
    const all: number[] = [];
    for (let a = 0; a < A; a++) {
      const f = front[a]!;
      for (let i = f.length - 1; i >= 0; i--) all.push(f[i]!);
      const b = back[a]!;
      for (let i = backHead[a]!; i < b.length; i++) all.push(b[i]!);
    }
    return all.sort((x, y) => key[x]! - key[y]!);
  }

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
    backlogAtEnd: t >= durationSeconds ? waitingCount + runningCount : 0,
    acceptedSecondHalf,
  };
}
