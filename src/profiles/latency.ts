import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { latencyModelSchema, type LatencyModel } from '../latency/index.js';
import { DERIVED_KEY, isDerivedId } from './derived.js';
import { PACKAGE_ROOT } from './store.js';

export const LATENCY_DIR = join(PACKAGE_ROOT, 'models', 'latency');

const loaded = new Map<string, LatencyModel | undefined>();

/** A derived profile reads the latency model fitted on derived profiles' runs (validate:derived). */
export const latencyModelPath = (profileId: string, dir = LATENCY_DIR) =>
  join(dir, `${isDerivedId(profileId) ? DERIVED_KEY : profileId}.json`);

/**
 * A profile's latency correction and intervals (written by `npm run validate:twin`); undefined
 * when absent or unreadable (an older format), in which case answers carry the twin's figures
 * marked uncalibrated and say so, rather than failing.
 */
export function loadLatencyModel(profileId: string, dir = LATENCY_DIR): LatencyModel | undefined {
  const path = latencyModelPath(profileId, dir);
  if (loaded.has(path)) return loaded.get(path);
  let model: LatencyModel | undefined;
  if (existsSync(path)) {
    try {
      const parsed = latencyModelSchema.safeParse(JSON.parse(readFileSync(path, 'utf8')));
      model = parsed.success ? parsed.data : undefined;
    } catch {
      model = undefined; // not JSON: as unreadable as a wrong shape
    }
  }
  loaded.set(path, model);
  return model;
}
