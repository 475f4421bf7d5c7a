import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { profileSchema, type Profile } from '../twin/profile.js';

/** The package root: this file sits two levels below it, in src/ or in dist/. */
export const PACKAGE_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const PROFILES_DIR = join(PACKAGE_ROOT, 'models', 'profiles');

export class UnknownProfileError extends Error {
  constructor(
    readonly profile: string,
    readonly known: string[],
  ) {
    super(`unknown profile "${profile}"; known profiles: ${known.join(', ')}`);
  }
}

/**
 * Profiles that do not ship as files (derived ones the service stored), registered by the process
 * that holds them: every route and command that takes a profile id then finds them.
 */
const registered = new Map<string, Profile>();

export function registerProfile(profile: Profile): void {
  registered.set(profile.id, profile);
}

/** Profile ids ("gpu/model") found under models/profiles/, then the registered ones. */
export function listProfiles(dir = PROFILES_DIR): string[] {
  return [...shippedProfiles(dir), ...[...registered.keys()].sort()];
}

function shippedProfiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true })
    .filter((d) => d.isDirectory())
    .flatMap((gpu) =>
      readdirSync(join(dir, gpu.name))
        .filter((f) => f.endsWith('.json') && f !== 'calibration-inputs.json')
        .map((f) => `${gpu.name}/${f.slice(0, -'.json'.length)}`),
    )
    .sort();
}

const cache = new Map<string, Profile>();

export function loadProfile(id: string, dir = PROFILES_DIR): Profile {
  const key = `${dir}::${id}`;
  const hit = cache.get(key) ?? registered.get(id);
  if (hit) return hit;
  const known = shippedProfiles(dir);
  if (!known.includes(id)) throw new UnknownProfileError(id, listProfiles(dir));
  const profile = profileSchema.parse(JSON.parse(readFileSync(join(dir, `${id}.json`), 'utf8')));
  cache.set(key, profile);
  return profile;
}

/** The profiles fitted to measured runs: what derived profiles learn their factors from. */
export function measuredProfiles(dir = PROFILES_DIR): Profile[] {
  return listProfiles(dir)
    .map((id) => loadProfile(id, dir))
    .filter((p) => (p.evidence ?? 'measured') === 'measured');
}
