import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PACKAGE_ROOT, loadProfile } from '../profiles/store.js';
import { SimulationPool } from '../runtime/pool.js';
import { estimateGpu } from '../search/estimate.js';
import { benchPlacementContext } from './context.js';
import { mapLimited, piecesOf, PLACEMENT_CONCURRENCY } from '../placement/loraplan.js';
import {
  flagsFor,
  judgeGpu,
  requiredCompletion,
  spreadLargestFirst,
  VERIFY_SECONDS,
  type Piece,
} from '../placement/gpu.js';
import { zipfCatalog } from '../placement/index.js';
import type { VllmFlags } from '../search/index.js';
import { TWIN_VERSION, vllmStarts } from '../twin/index.js';

/**
 * npm run bench:estimate: the placement's closed-form estimate of one GPU (src/search/estimate.ts)
 * against one-hour twin runs of the same GPU. The GPUs are bench:placement's 1,000-adapter Zipf
 * catalog (hot adapters split as loraplan splits them) spread largest-first over 7 and 10 GPUs,
 * each run at 2 to 48 slots; and, for capacity, the same GPUs at three times their load, at the
 * slot count the estimate rates best. Writes docs/placement/estimate.md.
 */
const PROFILES = ['h100-64gb/llama-3.1-8b-instruct', 'h100-64gb/qwen-2.5-7b-instruct'];
const CATALOG = { adapters: 1000, meanRate: 0.2, seed: 1000 };
const GPU_COUNTS = [7, 10];
const SLOTS = [2, 4, 8, 16, 32, 48];
/** Bisection steps on the load multiplier at which a GPU stops serving (in [0, 4]). */
const CAPACITY_STEPS = 9;

interface Case {
  profile: string;
  gpus: number;
  gpu: number;
  maxLoras: number;
  adapters: number;
  /** Whether these are the slots the placement gives this GPU (flagsFor). */
  chosen: boolean;
  estimate: number;
  twin: number;
}

/** A GPU's capacity: the largest multiplier of its load at which it still serves. */
interface Capacity {
  profile: string;
  maxLoras: number;
  estimate: number;
  twin: number;
}

const pct = (x: number, digits = 1) => `${(100 * x).toFixed(digits)}%`;

/** The largest m in [0, 4] with serves(m), by bisection (serves is monotone in the load). */
async function largestServing(serves: (m: number) => Promise<boolean> | boolean, steps: number) {
  let lo = 0;
  let hi = 4;
  for (let i = 0; i < steps; i++) {
    const m = (lo + hi) / 2;
    if (await serves(m)) lo = m;
    else hi = m;
  }
  return (lo + hi) / 2;
}

async function main() {
  const pool = new SimulationPool({});
  const cases: Case[] = [];
  const capacities: Capacity[] = [];
  try {
    for (const profileId of PROFILES) {
      const profile = loadProfile(profileId);
      const ctx = benchPlacementContext(profile, (scenario, _profile, starvationThreshold) =>
        pool.run({ scenario, starvationThreshold }),
      );
      const bins = GPU_COUNTS.flatMap((gpus) =>
        spreadLargestFirst(piecesOf(ctx, zipfCatalog(CATALOG)), gpus).map((bin, gpu) => ({
          gpus,
          gpu,
          bin,
          chosen: flagsFor(ctx, bin)!.flags,
        })),
      );
      const estimateAt = (bin: Piece[], flags: VllmFlags, multiplier: number) =>
        estimateGpu(profile, ctx.lengths, {
          rates: bin.map((p) => p.rate * multiplier),
          maxLoras: flags.maxLoras,
          maxLoraRank: flags.maxLoraRank,
        });
      const completion = (point: {
        throughputTokensPerSecond: number;
        offeredTokensPerSecond: number;
      }) => point.throughputTokensPerSecond / point.offeredTokensPerSecond;
      const jobs = bins.flatMap(({ gpus, gpu, bin, chosen }) =>
        SLOTS.filter((s) => s <= bin.length && vllmStarts(profile, s, chosen.maxLoraRank))
          .concat(SLOTS.includes(chosen.maxLoras) ? [] : [chosen.maxLoras])
          .map((maxLoras) => ({
            gpus,
            gpu,
            bin,
            flags: { ...chosen, maxLoras },
            chosen: maxLoras === chosen.maxLoras,
          })),
      );
      const verdicts = await mapLimited(jobs, PLACEMENT_CONCURRENCY, (j) =>
        judgeGpu(ctx, j.bin, j.flags, VERIFY_SECONDS),
      );
      jobs.forEach((j, i) =>
        cases.push({
          profile: profileId,
          gpus: j.gpus,
          gpu: j.gpu,
          maxLoras: j.flags.maxLoras,
          adapters: j.bin.length,
          chosen: j.chosen,
          estimate: completion(estimateAt(j.bin, j.flags, 1)),
          twin: completion(verdicts[i]!.point),
        }),
      );
      // Capacity at the placement's slots: where the estimate and the twin stop serving.
      const required = requiredCompletion(ctx);
      const found = await mapLimited(bins, PLACEMENT_CONCURRENCY, async ({ bin, chosen }) => ({
        profile: profileId,
        maxLoras: chosen.maxLoras,
        estimate: await largestServing(
          (m) => completion(estimateAt(bin, chosen, m)) >= required,
          30,
        ),
        twin: await largestServing(
          async (m) =>
            completion((await judgeGpu(ctx, bin, chosen, VERIFY_SECONDS, m)).point) >= required,
          CAPACITY_STEPS,
        ),
      }));
      capacities.push(...found);
      process.stderr.write(
        `${profileId}: ${jobs.length + bins.length * CAPACITY_STEPS} one-hour twin runs\n`,
      );
    }
  } finally {
    await pool.close();
  }

  const row = (profileId: string, label: string, at: Case[]) => {
    if (at.length === 0) return `| ${profileId} | ${label} | 0 | | | |`;
    const diffs = at.map((c) => c.estimate - c.twin);
    const worst = Math.max(...diffs.map(Math.abs));
    const mean = diffs.reduce((a, b) => a + b, 0) / diffs.length;
    const high = diffs.filter((d) => d > 0).length;
    return `| ${profileId} | ${label} | ${at.length} | ${worst.toFixed(3)} | ${mean >= 0 ? '+' : ''}${mean.toFixed(3)} | ${high} of ${at.length} |`;
  };
  const completionRows = PROFILES.flatMap((profileId) => {
    const mine = cases.filter((c) => c.profile === profileId);
    return [
      row(
        profileId,
        "the placement's (estimate's best)",
        mine.filter((c) => c.chosen),
      ),
      ...SLOTS.map((s) =>
        row(
          profileId,
          String(s),
          mine.filter((c) => c.maxLoras === s),
        ),
      ),
    ];
  });
  const capacityRows = PROFILES.map((profileId) => {
    const mine = capacities.filter((c) => c.profile === profileId);
    const errors = mine.map((c) => c.estimate / c.twin - 1);
    const slots = [...new Set(mine.map((c) => c.maxLoras))].sort((a, b) => a - b);
    return `| ${profileId} | ${mine.length} | ${slots.join(', ')} | ${pct(Math.min(...errors))} to ${pct(Math.max(...errors))} | ${pct(errors.reduce((a, b) => a + b, 0) / errors.length)} |`;
  });

  const md = `<!-- written by npm run bench:estimate (twin ${TWIN_VERSION}) -->

# The placement's closed-form estimate against the twin

\`npm run bench:estimate\`, twin ${TWIN_VERSION}. The GPUs of bench:placement's ${CATALOG.adapters.toLocaleString('en-US')}-adapter Zipf
catalog (mean ${CATALOG.meanRate} requests/s per adapter, seed ${CATALOG.seed}; hot adapters split as loraplan splits them),
spread largest-first over ${GPU_COUNTS.join(' and ')} GPUs: ${capacities.length / PROFILES.length} GPUs per profile, each run for an hour in the
twin and estimated in closed form, at the slots the placement gives it (the estimate's best) and at
${SLOTS.join(', ')} slots where vLLM starts with them. Completion is tokens completed over tokens
offered; a positive difference means the estimate is the more optimistic.

| profile | slots | GPUs | largest \\|estimate - twin\\| completion | mean estimate - twin | estimate higher |
|---|---|---:|---:|---:|---:|
${completionRows.join('\n')}

Capacity: the largest multiple of its load (in [0, 4]) at which each GPU still completes
${pct(0.9, 0)} of it, at the placement's slots: closed form against the twin (bisection, ${CAPACITY_STEPS} one-hour runs
per GPU, so within ${pct(4 / 2 ** CAPACITY_STEPS)} of the load).

| profile | GPUs | slots | estimate / twin - 1, range | mean |
|---|---:|---|---:|---:|
${capacityRows.join('\n')}
`;
  const out = join(PACKAGE_ROOT, 'docs', 'placement');
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, 'estimate.md'), md);
  process.stdout.write(md);
}

void main();
