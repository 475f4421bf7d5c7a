import { independentColumns, solve } from '../stats/ols.js';
import { median } from '../stats/index.js';
import {
  cpuToGpuLoadMs,
  kvCacheTokens,
  loraMsPerBatchedToken,
  type Profile,
} from '../twin/profile.js';
import type { RequestRecord } from './load.js';
import { serverFlag as flag, type Experiment } from './plan.js';
import { observedSteps, type ObservedStep } from './steps.js';

/** One experiment of a plan as run.sh left it. */
export interface KitRun {
  experiment: Experiment;
  outcome: 'ok' | 'startup-failed' | 'startup-timeout' | 'load-failed' | 'missing';
  /** What vLLM logged as its KV cache ("GPU KV cache size: N tokens"), when it did. */
  kvCacheTokens?: number;
  records: RequestRecord[];
}

export interface KitFit {
  profile: Profile;
  /** Terms refitted, each with what it rests on. */
  refitted: string[];
  /** Terms the kit's records leave at the starting profile's values, and why. */
  unchanged: string[];
  report: {
    kvRows: Array<{ maxLoras: number; maxLoraRank: number; kvCacheTokens: number | null }>;
    /** Median of measured - starting KV tokens, applied to the pairs not measured. */
    kvShiftTokens?: number;
    baseSteps: number;
    /** Median |observed - fitted| / observed over the steps fitted on, per group. */
    baseStepMedianAbsPct?: number;
    loraSteps: number;
    loraScale?: number;
    loraStepMedianAbsPct?: number;
    /** Steps of the loads experiment, the loads their slot replay finds, and the fitted scale. */
    loadSteps: number;
    adapterLoads?: number;
    adapterLoadScale?: number;
    /** Adapters read from disk for the first time in the loads experiment, and the fitted read. */
    diskReads?: number;
    diskToCpuMs?: number;
  };
}

const BASE_TERMS = ['intercept', 'perDecodeSeq', 'perPrefillToken', 'perKvKiloToken'] as const;

/** Least squares with row i scaled by 1/scales[i]: errors relative to each step's duration. */
function scaledLeastSquares(rows: number[][], ys: number[], scales: number[]): number[] {
  const k = rows[0]!.length;
  const xtx = Array.from({ length: k }, () => new Array<number>(k).fill(0));
  const xty = new Array<number>(k).fill(0);
  rows.forEach((row, i) => {
    const w = 1 / scales[i]! ** 2;
    for (let a = 0; a < k; a++) {
      xty[a]! += w * row[a]! * ys[i]!;
      for (let b = 0; b < k; b++) xtx[a]![b]! += w * row[a]! * row[b]!;
    }
  });
  return solve(xtx, xty);
}

/**
 * Refits a profile from what a measurement plan's experiments recorded (src/measure/plan.ts):
 * - the KV cache rows vLLM logged at start-up become measured rows, and the median difference
 *   from the starting profile shifts its estimate for the pairs not measured;
 * - the steps of the no-LoRA closed loads (decode at several batch sizes, prefill) refit the four
 *   base step terms, those the steps identify, with the scheduler's CPU terms carried over;
 * - the steps of the LoRA closed loads refit one scale on the five LoRA terms (two slot counts
 *   cannot separate five terms).
 * Adapter loads and the serving runs are not read here. Pure: records in, profile out.
 */
export function fitKitRuns(start: Profile, runs: readonly KitRun[]): KitFit {
  const refitted: string[] = [];
  const unchanged: string[] = [];
  const profile: Profile = structuredClone(start);
  const report: KitFit['report'] = { kvRows: [], baseSteps: 0, loraSteps: 0, loadSteps: 0 };

  // KV cache: what vLLM logged, per (slots, rank).
  for (const run of runs.filter((r) => r.experiment.load.kind === 'startup')) {
    const maxLoras = flag(run.experiment.serverArgs, 'max-loras');
    const maxLoraRank = flag(run.experiment.serverArgs, 'max-lora-rank');
    if (maxLoras === undefined || maxLoraRank === undefined) continue;
    if (run.kvCacheTokens !== undefined)
      report.kvRows.push({ maxLoras, maxLoraRank, kvCacheTokens: run.kvCacheTokens });
    else if (run.outcome === 'startup-failed')
      report.kvRows.push({ maxLoras, maxLoraRank, kvCacheTokens: null });
  }
  const logged = report.kvRows.filter((r) => r.kvCacheTokens !== null);
  if (logged.length > 0) {
    const shift = Math.round(
      median(logged.map((r) => r.kvCacheTokens! - kvCacheTokens(start, r.maxLoras, r.maxLoraRank))),
    );
    report.kvShiftTokens = shift;
    profile.kvCache.intercept = start.kvCache.intercept + shift;
    if (start.kvCache.accounted)
      profile.kvCache.accounted = start.kvCache.accounted.map((a) => ({
        maxLoraRank: a.maxLoraRank,
        gapTokens: a.gapTokens,
        kvCacheTokens: a.kvCacheTokens.map(
          (t) => Math.max(0, Math.floor((t + shift) / start.blockSize)) * start.blockSize,
        ),
      }));
    const others = start.kvCache.measured.filter(
      (m) =>
        !report.kvRows.some((r) => r.maxLoras === m.maxLoras && r.maxLoraRank === m.maxLoraRank),
    );
    profile.kvCache.measured = [...others, ...report.kvRows].sort(
      (a, b) => a.maxLoraRank - b.maxLoraRank || a.maxLoras - b.maxLoras,
    );
    refitted.push(
      `kvCache (${logged.length} start-up logs; the pairs not measured shifted by ${shift} tokens)`,
    );
  } else if (report.kvRows.length > 0)
    refitted.push(`kvCache (${report.kvRows.length} start-ups that failed, no size logged)`);
  else unchanged.push('kvCache (no start-up log with a KV cache size)');

  const closed = runs.filter((r) => r.experiment.load.kind === 'closed' && r.records.length > 0);
  const stepsOf = (lora: boolean) =>
    closed
      .filter((r) => r.experiment.adapters.length > 0 === lora)
      .flatMap((r) =>
        observedSteps(r.records, start.blockSize).map((s) => ({
          step: s,
          maxLoras: flag(r.experiment.serverArgs, 'max-loras') ?? 0,
        })),
      );
  const sched = start.scheduler;
  const schedulerMs = (s: ObservedStep) =>
    sched.intercept +
    sched.perRunningRequest * (s.decodeSeqs + s.prefillSeqs) +
    sched.perVisitedWaitingRequest * s.waiting;
  const baseRow = (s: ObservedStep) => [1, s.decodeSeqs, s.prefillTokens, s.kvTokens / 1000];

  // Base step terms on the steps without LoRA.
  const baseSteps = stepsOf(false).map((x) => x.step);
  report.baseSteps = baseSteps.length;
  if (baseSteps.length >= BASE_TERMS.length) {
    const rows = baseSteps.map(baseRow);
    const kept = independentColumns(rows);
    const fixed = BASE_TERMS.map((_, j) => j).filter((j) => !kept.includes(j));
    const startTerms = BASE_TERMS.map((t) => start.stepTime.base[t]);
    const ys = baseSteps.map(
      (s, i) =>
        s.ms - schedulerMs(s) - fixed.reduce((sum, j) => sum + startTerms[j]! * rows[i]![j]!, 0),
    );
    const predicted = () =>
      baseSteps.map(
        (s, i) =>
          schedulerMs(s) +
          BASE_TERMS.reduce((sum, t, j) => sum + profile.stepTime.base[t] * rows[i]![j]!, 0),
      );
    // Relative errors, weighted by the predicted step, not the observed one: weights from the
    // observations would correlate with their noise and bias every term low. Twice, so that the
    // weights come from the refitted terms.
    for (let pass = 0; pass < 2; pass++) {
      const beta = scaledLeastSquares(
        rows.map((r) => kept.map((j) => r[j]!)),
        ys,
        predicted(),
      );
      kept.forEach((j, i) => (profile.stepTime.base[BASE_TERMS[j]!] = beta[i]!));
    }
    const fitted = predicted();
    report.baseStepMedianAbsPct = median(
      baseSteps.map((s, i) => (100 * Math.abs(s.ms - fitted[i]!)) / s.ms),
    );
    refitted.push(
      `stepTime.base: ${kept.map((j) => BASE_TERMS[j]).join(', ')} (${baseSteps.length} steps of the closed loads without LoRA)`,
    );
    for (const j of fixed)
      unchanged.push(
        `stepTime.base.${BASE_TERMS[j]} (the closed loads do not vary what it multiplies)`,
      );
  } else unchanged.push('stepTime.base (no closed load without LoRA was recorded)');

  const baseMs = (s: ObservedStep) =>
    schedulerMs(s) +
    BASE_TERMS.reduce((sum, t, j) => sum + profile.stepTime.base[t] * baseRow(s)[j]!, 0);
  const loraMsOf = (p: Profile) => (s: ObservedStep, maxLoras: number) =>
    p.stepTime.lora.intercept +
    p.stepTime.lora.perSlot * maxLoras +
    p.stepTime.lora.perAdapterInBatch * s.adapters +
    loraMsPerBatchedToken(p, maxLoras) * (s.decodeSeqs + s.prefillTokens);

  // One scale on the LoRA terms, on the steps with LoRA that load no adapter.
  const loraSteps = closed
    .filter((r) => r.experiment.adapters.length > 0)
    .flatMap((r) => {
      const maxLoras = flag(r.experiment.serverArgs, 'max-loras') ?? 0;
      const steps = observedSteps(r.records, start.blockSize);
      const loads = replaySlots(steps, maxLoras);
      return steps
        .filter((_, i) => loads[i]!.loaded.length === 0)
        .map((step) => ({ step, maxLoras }));
    });
  report.loraSteps = loraSteps.length;
  const loraMs = loraMsOf(start);
  if (loraSteps.length > 0) {
    const [scale] = scaledLeastSquares(
      loraSteps.map(({ step, maxLoras }) => [loraMs(step, maxLoras)]),
      loraSteps.map(({ step }) => step.ms - baseMs(step)),
      loraSteps.map(({ step, maxLoras }) => baseMs(step) + loraMs(step, maxLoras)),
    ) as [number];
    report.loraScale = scale;
    const lora = start.stepTime.lora;
    for (const k of Object.keys(lora) as Array<keyof typeof lora>)
      profile.stepTime.lora[k] = lora[k] * scale;
    report.loraStepMedianAbsPct = median(
      loraSteps.map(
        ({ step, maxLoras }) =>
          (100 * Math.abs(step.ms - baseMs(step) - scale * loraMs(step, maxLoras))) / step.ms,
      ),
    );
    refitted.push(
      `stepTime.lora, one scale on its five terms (${loraSteps.length} steps of the closed LoRA loads)`,
    );
  } else unchanged.push('stepTime.lora (no closed LoRA load was recorded)');

  // Adapter loads: what the loads experiment's steps take beyond their fitted time, against the
  // loads a replay of vLLM's least-recently-used slots puts in them.
  const loadRuns = runs.filter(
    (r) => r.experiment.identifies.includes('adapterLoad') && r.records.length > 0,
  );
  const rows: number[][] = [];
  const ys: number[] = [];
  const scales: number[] = [];
  let adapterLoads = 0;
  const firstUseSteps: Array<{ ms: number; other: number; loadMs: number; firstUses: number }> = [];
  const fittedLoraMs = loraMsOf(profile);
  for (const run of loadRuns) {
    const maxLoras = flag(run.experiment.serverArgs, 'max-loras') ?? 0;
    const maxLoraRank = flag(run.experiment.serverArgs, 'max-lora-rank') ?? 0;
    const rankOf = new Map(run.experiment.adapters.map((a) => [a.name, a.rank]));
    // With room on the host for every adapter, an adapter is read from disk at its first use only.
    const hostHoldsAll =
      (flag(run.experiment.serverArgs, 'max-cpu-loras') ?? 0) >= run.experiment.adapters.length;
    const steps = observedSteps(run.records, start.blockSize);
    replaySlots(steps, maxLoras).forEach(({ loaded, firstUse, firstUses }, i) => {
      const s = steps[i]!;
      const loadMs = loaded.reduce(
        (sum, a) => sum + cpuToGpuLoadMs(start, maxLoraRank, rankOf.get(a) ?? maxLoraRank),
        0,
      );
      const other = baseMs(s) + fittedLoraMs(s, maxLoras);
      // A first use reads the adapter from disk too: fitted after the loads, from these steps.
      if (firstUse) {
        if (hostHoldsAll) firstUseSteps.push({ ms: s.ms, other, loadMs, firstUses });
        return;
      }
      rows.push([loadMs]);
      ys.push(s.ms - other);
      scales.push(other + loadMs);
      adapterLoads += loaded.length;
    });
  }
  report.loadSteps = rows.length;
  report.adapterLoads = adapterLoads;
  if (adapterLoads > 0) {
    const [scale] = scaledLeastSquares(rows, ys, scales) as [number];
    report.adapterLoadScale = scale;
    const load = profile.adapterLoad;
    load.cpuToGpuMs = load.cpuToGpuMs.map((r) => ({ ...r, ms: r.ms * scale }));
    load.cpuToGpuFallback = {
      intercept: load.cpuToGpuFallback.intercept * scale,
      perMaxLoraRank: load.cpuToGpuFallback.perMaxLoraRank * scale,
      paddedPenalty: load.cpuToGpuFallback.paddedPenalty * scale,
    };
    refitted.push(
      `adapterLoad, one scale on the host-to-GPU load times (${adapterLoads} loads in ${rows.length} steps of the loads experiment)`,
    );
  } else
    unchanged.push(
      loadRuns.length > 0
        ? "adapterLoad (the loads experiment made no load after each adapter's first use)"
        : 'adapterLoad (no loads experiment was recorded)',
    );
  // Disk reads: what the first-use steps take beyond their fitted time and host-to-GPU loads,
  // per adapter read for the first time in them.
  const loadScale = report.adapterLoadScale ?? 1;
  const diskReads = firstUseSteps.reduce((n, f) => n + f.firstUses, 0);
  report.diskReads = diskReads;
  if (diskReads > 0) {
    const startDisk = start.adapterLoad.diskToCpuMs;
    const [diskMs] = scaledLeastSquares(
      firstUseSteps.map((f) => [f.firstUses]),
      firstUseSteps.map((f) => f.ms - f.other - loadScale * f.loadMs),
      firstUseSteps.map((f) => f.other + loadScale * f.loadMs + startDisk * f.firstUses),
    ) as [number];
    profile.adapterLoad.diskToCpuMs = Math.max(0, diskMs);
    report.diskToCpuMs = profile.adapterLoad.diskToCpuMs;
    refitted.push(
      `adapterLoad.diskToCpuMs, an adapter's disk read (${diskReads} first uses in ${firstUseSteps.length} steps of the loads experiment)`,
    );
  } else
    unchanged.push(
      "adapterLoad.diskToCpuMs (no loads experiment with every adapter held on the host recorded an adapter's first use)",
    );
  unchanged.push('scheduler (its CPU terms carry over)');
  profile.fit = { ...start.fit, kitFit: report };
  return { profile, refitted, unchanged, report };
}

/**
 * vLLM's GPU slots replayed over a load's steps: an adapter in a step's batch and in no slot is
 * loaded in that step, into a free slot or that of the least recently used adapter not in the
 * batch. `firstUse`: the step holds an adapter no earlier step had.
 */
function replaySlots(
  steps: readonly ObservedStep[],
  maxLoras: number,
): Array<{ loaded: string[]; firstUse: boolean; firstUses: number }> {
  const lastUsed = new Map<string, number>();
  const seen = new Set<string>();
  return steps.map((s, i) => {
    const names = s.adapterNames;
    for (const a of names) if (lastUsed.has(a)) lastUsed.set(a, i);
    const loaded: string[] = [];
    for (const a of names) {
      if (lastUsed.has(a)) continue;
      if (lastUsed.size >= maxLoras) {
        let victim: string | undefined;
        for (const [name, used] of lastUsed)
          if (used !== i && (victim === undefined || used < lastUsed.get(victim)!)) victim = name;
        if (victim !== undefined) lastUsed.delete(victim);
      }
      lastUsed.set(a, i);
      loaded.push(a);
    }
    const firstUses = names.filter((a) => !seen.has(a)).length;
    for (const a of names) seen.add(a);
    return { loaded, firstUse: firstUses > 0, firstUses };
  });
}
