import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { latencyModelSchema, type LatencyModel } from '../latency/index.js';
import { PACKAGE_ROOT } from './store.js';

export const LATENCY_DIR = join(PACKAGE_ROOT, 'models', 'latency');

const loaded = new Map<string, LatencyModel | undefined>();

export const latencyModelPath = (profileId: string, dir = LATENCY_DIR) =>
  join(dir, `${profileId}.json`);

/**
 * A profile's latency correction and intervals (written by `npm run validate:twin`); undefined
 * when absent, in which case answers carry the twin's figures marked uncalibrated.
 */
export function loadLatencyModel(profileId: string, dir = LATENCY_DIR): LatencyModel | undefined {
  const path = latencyModelPath(profileId, dir);
  if (loaded.has(path)) return loaded.get(path);
  const model = existsSync(path)
    ? latencyModelSchema.parse(JSON.parse(readFileSync(path, 'utf8')))
    : undefined;
  loaded.set(path, model);
  return model;
}
