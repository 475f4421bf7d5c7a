import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { DERIVED_KEY, isDerivedId } from './derived.js';
import { PACKAGE_ROOT } from './store.js';

/**
 * The twin against reality on measured runs: each run's completion ratio (throughput / offered)
 * in the twin and on the real server. Written by `npm run validate:twin` per profile.
 */
export const verdictRunsSchema = z.object({
  profile: z.string(),
  twinVersion: z.string(),
  source: z.string(),
  runs: z.array(z.object({ workload: z.string(), twinRatio: z.number(), realRatio: z.number() })),
});
export type VerdictRuns = z.infer<typeof verdictRunsSchema>;
export type VerdictRun = VerdictRuns['runs'][number];

export const VERDICTS_DIR = join(PACKAGE_ROOT, 'models', 'verdicts');

const loaded = new Map<string, readonly VerdictRun[]>();

/** A derived profile reads the out-of-fold verdicts of derived profiles (validate:derived). */
export const verdictRunsPath = (profileId: string, dir = VERDICTS_DIR) =>
  join(dir, `${isDerivedId(profileId) ? DERIVED_KEY : profileId}.json`);

/**
 * The twin-vs-real completion ratios of a profile's validation runs (written by
 * `npm run validate:twin`); none when the file is absent, which turns the edge rule off.
 */
export function loadVerdictRuns(profileId: string, dir = VERDICTS_DIR): readonly VerdictRun[] {
  const path = verdictRunsPath(profileId, dir);
  const hit = loaded.get(path);
  if (hit) return hit;
  const runs = existsSync(path)
    ? verdictRunsSchema.parse(JSON.parse(readFileSync(path, 'utf8'))).runs
    : [];
  loaded.set(path, runs);
  return runs;
}
