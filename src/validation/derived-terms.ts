// Where a derived profile's out-of-fold throughput error comes from: the held model's derived
// profile with one step-time term (or group) at a time replaced by its calibrated value, each
// simulated over that model's real runs. Writes docs/validation/derived-terms.md.
// Usage: npm run validate:derived:terms [-- --data DIR --out DIR --threads N]
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { derive, readDeriveCatalog, type DeriveCatalog } from '../derive/index.js';
import { PACKAGE_ROOT, loadProfile } from '../profiles/store.js';
import type { Profile } from '../twin/index.js';
import { servingFigures } from './derived.js';
import { profileOf } from './latency.js';
import { pct } from './metrics.js';
import { compareRuns, DEFAULT_DATA_DIR, type RunComparison } from './twin.js';

const MODELS = ['llama-3.1-8b-instruct', 'qwen-2.5-7b-instruct'] as const;

type StepTime = Profile['stepTime'];
type Group = keyof StepTime;

/** One variant: the derived profile with the named terms taken from the calibrated one. */
interface Variant {
  label: string;
  replace: (derived: StepTime, calibrated: StepTime) => StepTime;
}

function variants(derived: StepTime): Variant[] {
  const one = (group: Group, term: string): Variant => ({
    label: `${group}.${term}`,
    replace: (d, c) => ({
      ...d,
      [group]: { ...d[group], [term]: termOf(c, group, term) },
    }),
  });
  return [
    { label: 'none (the derived profile)', replace: (d) => d },
    ...(['base', 'lora'] as const).flatMap((g) => Object.keys(derived[g]).map((t) => one(g, t))),
    { label: 'every base term', replace: (d, c) => ({ ...d, base: c.base }) },
    { label: 'every LoRA term', replace: (d, c) => ({ ...d, lora: c.lora }) },
    { label: 'the whole step time', replace: (_d, c) => c },
  ];
}

interface Row {
  label: string;
  mape: number;
  verdictAgreement: number;
}

const rowOf = (label: string, runs: readonly RunComparison[]): Row => {
  const s = servingFigures(runs);
  return { label, mape: s.throughput.mape, verdictAgreement: s.verdictAgreement };
};

/** One step-time term's value, by group and name. */
const termOf = (stepTime: StepTime, group: Group, term: string) =>
  (stepTime[group] as Record<string, number>)[term]!;

/** How far a derived term lies from the calibrated one, as a factor in words. */
function ratioText(derived: StepTime, calibrated: StepTime, label: string): string {
  const [group, t] = label.split('.') as [Group, string];
  const r = termOf(derived, group, t) / termOf(calibrated, group, t);
  return r >= 1 ? `${r.toFixed(2)}x` : `1/${(1 / r).toFixed(2)} of`;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { data: { type: 'string' }, out: { type: 'string' }, threads: { type: 'string' } },
  });
  const dataDir = resolve(values.data ?? DEFAULT_DATA_DIR);
  const outDir = resolve(values.out ?? join(PACKAGE_ROOT, 'docs', 'validation'));
  const threads = values.threads ? Number(values.threads) : undefined;
  const catalog: DeriveCatalog = {
    ...readDeriveCatalog(join(PACKAGE_ROOT, 'models')),
    expectedError: undefined,
  };
  const measured = MODELS.map((m) => loadProfile(profileOf(m)));
  const sections: string[] = [];
  const findings: string[] = [];
  for (const held of MODELS) {
    const fitOn = MODELS.filter((m) => m !== held);
    const calibrated = loadProfile(profileOf(held));
    const derived = derive(
      {
        gpu: 'h100-64gb',
        model: held,
        fitOn: fitOn.map(profileOf),
        flags: { maxModelLen: calibrated.maxModelLen },
      },
      catalog,
      measured,
    );
    const rows: Row[] = [];
    for (const v of variants(derived.stepTime)) {
      const profile: Profile = {
        ...derived,
        stepTime: v.replace(derived.stepTime, calibrated.stepTime),
      };
      const runs = await compareRuns(dataDir, threads, held, new Map([[profileOf(held), profile]]));
      rows.push(rowOf(v.label, runs));
      process.stderr.write(`${held}, calibrated ${v.label}: ${pct(rows.at(-1)!.mape, 2)}\n`);
    }
    const own = rowOf(
      'the calibrated profile (nothing derived)',
      await compareRuns(dataDir, threads, held),
    );
    rows.push(own);
    const single = rows.filter((r) => r.label.includes('.'));
    const best = single.reduce((a, b) => (b.mape < a.mape ? b : a));
    const whole = rows.find((r) => r.label === 'the whole step time')!;
    findings.push(
      `- ${held}: derived ${pct(rows[0]!.mape, 2)}; the calibrated step time with everything else derived ${pct(whole.mape, 2)}, against ${pct(own.mape, 2)} for the calibrated profile. The one term that removes most: \`${best.label}\` (to ${pct(best.mape, 2)}), whose derived value is ${ratioText(derived.stepTime, calibrated.stepTime, best.label)} the calibrated one.`,
    );
    const term = (group: Group, t: string) =>
      `${termOf(derived.stepTime, group, t).toPrecision(3)} / ${termOf(calibrated.stepTime, group, t).toPrecision(3)}`;
    sections.push(
      `## ${held}, factors from ${fitOn.join(' + ')}`,
      '',
      '| calibrated value taken for | derived / calibrated value | throughput MAPE | starvation verdicts agree |',
      '| --- | --- | --- | --- |',
      ...rows.map((r) => {
        const [group, t] = r.label.split('.') as [Group, string | undefined];
        const values = t !== undefined ? term(group, t) : '';
        return `| ${r.label} | ${values} | ${pct(r.mape, 2)} | ${pct(100 * r.verdictAgreement)} |`;
      }),
      '',
    );
  }
  const report = [
    '# Where a derived profile errs, term by term',
    '',
    'Command: `npm run validate:derived:terms` (2 folds x 15 variants, each simulated over every',
    "real run of the held model). The held model's H100 profile is derived from the other model's",
    'factors (as in [derived.md](derived.md), out of fold), then one step-time term, one group of',
    "terms or the whole step time is replaced by the calibrated profile's value and the twin is run",
    "again over the held model's real runs. Memory, adapter loads and the scheduler's terms stay",
    'derived throughout. A term whose replacement removes much of the error is one whose work',
    '(src/derive/work.ts) does not carry over between the two models at one factor.',
    '',
    ...sections,
    '## Reading it',
    '',
    ...findings,
    '- Terms that trade off in the calibrated fits (the LoRA per-token terms against each other and',
    '  the LoRA intercept, the per-sequence cost against the per-KV cost) can be wrong one by one by',
    '  more than their sum: where replacing one term raises the error, the sum no longer matches.',
    '- This is a diagnosis on the two measured models, not a fit: choosing a work formula by these',
    '  rows would tune the derivation on the only held-out data there is.',
    '',
  ].join('\n');
  writeFileSync(join(outDir, 'derived-terms.md'), report);
  process.stdout.write(`wrote ${join(outDir, 'derived-terms.md')}\n`);
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].replace(/^.*\/dist\//, 'dist/'))) {
  main().catch((e: unknown) => {
    process.stderr.write(`validate:derived:terms: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = 1;
  });
}
