import { lengthsFor } from '../search/estimate.js';
import type { PlacementContext } from '../placement/gpu.js';
import type { PointSimulator } from '../search/index.js';
import type { Profile } from '../twin/index.js';

/** The context the placement benches judge GPUs in: ShareGPT lengths, the paper's 90% rule. */
export function benchPlacementContext(
  profile: Profile,
  simulate: PointSimulator,
): PlacementContext {
  return {
    profile,
    lengths: lengthsFor(profile, { kind: 'sharegpt' }),
    requestLengths: { kind: 'sharegpt' },
    starvationThreshold: 0.1,
    objective: 'paper',
    simulate,
  };
}
