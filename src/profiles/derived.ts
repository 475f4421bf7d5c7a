import { join } from 'node:path';
import { PACKAGE_ROOT } from './store.js';

/**
 * Derived profiles answer with the errors validate:derived measured leave one model out, not
 * with any measured profile's: one verdict file and one latency model serve them all.
 */
export const DERIVED_KEY = 'derived';

/** Derived ids carry their content hash after '@' (src/derive/derive.ts). */
export const isDerivedId = (id: string) => id.includes('@');

export const derivedVerdictsPath = () =>
  join(PACKAGE_ROOT, 'models', 'verdicts', `${DERIVED_KEY}.json`);
export const derivedLatencyPath = () =>
  join(PACKAGE_ROOT, 'models', 'latency', `${DERIVED_KEY}.json`);
