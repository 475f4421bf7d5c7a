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

/** Profile ids ("gpu/model") found under models/profiles/. */
export function listProfiles(dir = PROFILES_DIR): string[] {
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
  const hit = cache.get(key);
  if (hit) return hit;
  const known = listProfiles(dir);
  if (!known.includes(id)) throw new UnknownProfileError(id, known);
  const profile = profileSchema.parse(JSON.parse(readFileSync(join(dir, `${id}.json`), 'utf8')));
  cache.set(key, profile);
  return profile;
}
