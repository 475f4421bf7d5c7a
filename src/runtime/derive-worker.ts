// Piscina worker: derives one profile off the main thread. A derivation replays the CUDA caching
// allocator for every slot count and rank (src/derive/residency.ts), 0.1 s to about 1 s, which
// would otherwise stall every request the service is answering. Replays are kept per thread.
import { join } from 'node:path';
import {
  derive,
  DeriveError,
  readDeriveCatalog,
  type DeriveCatalog,
  type DeriveRequest,
} from '../derive/index.js';
import { PACKAGE_ROOT } from '../profiles/store.js';
import type { Profile } from '../twin/profile.js';
import type { FieldIssue } from '../input/errors.js';

export interface DeriveTask {
  request: DeriveRequest;
  /** The profiles factors may be learned from, as the main thread knows them. */
  measured: Profile[];
}

/** Bad input comes back as its field issues: an Error's class does not survive the thread. */
export type DeriveTaskResult = { profile: Profile } | { issues: FieldIssue[] };

let catalog: DeriveCatalog | undefined;

export default function run(task: DeriveTask): DeriveTaskResult {
  catalog ??= readDeriveCatalog(join(PACKAGE_ROOT, 'models'));
  try {
    return { profile: derive(task.request, catalog, task.measured) };
  } catch (e) {
    if (e instanceof DeriveError) return { issues: e.issues };
    throw e;
  }
}
