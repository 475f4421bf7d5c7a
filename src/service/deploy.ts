import { deploySetOf, emit, type DeployOptions, type Emitted } from '../deploy/index.js';
import { PACKAGE_ROOT } from '../profiles/store.js';
import type { RunRepository } from '../storage/runs.js';
import { join } from 'node:path';

export class DeployUnavailableError extends Error {}

/** The manifests of a stored recommendation or placement; undefined when there is no such run. */
export function deployRun(
  runs: RunRepository,
  id: string,
  options: DeployOptions,
): Emitted | undefined {
  const run = runs.get(id);
  if (!run) return undefined;
  const set = deploySetOf(run.kind, run.response, run.profile);
  if (!set)
    throw new DeployUnavailableError(
      `run ${id} is a ${run.kind}: only recommend and placement runs have servers to deploy`,
    );
  return emit(set, options, join(PACKAGE_ROOT, 'models'));
}
