import { seededStream, shuffleInPlace } from '../twin/random.js';
import type { CatalogAdapter } from './gpu.js';

/** Ranks of the benchmark catalogs, most adapters at the small ranks (as published catalogs). */
const RANK_MIX: ReadonlyArray<readonly [rank: number, share: number]> = [
  [8, 0.4],
  [16, 0.3],
  [32, 0.2],
  [64, 0.1],
];

/**
 * A heavy-tailed catalog: the i-th most popular adapter sends rate proportional to 1/i^exponent
 * (Zipf), scaled to `meanRate` requests/s per adapter, with ranks drawn from RANK_MIX and ids in
 * shuffled order (so order-based methods see no hidden sorting). Deterministic for a seed.
 */
export function zipfCatalog(options: {
  adapters: number;
  meanRate: number;
  exponent?: number;
  seed?: number;
}): CatalogAdapter[] {
  const { adapters, meanRate } = options;
  const exponent = options.exponent ?? 1;
  const source = seededStream(options.seed ?? 1, 7);
  const weights = Array.from({ length: adapters }, (_, i) => 1 / (i + 1) ** exponent);
  const total = weights.reduce((s, w) => s + w, 0);
  const catalog = weights.map((w, i) => {
    let u = source.next();
    let rank = RANK_MIX[RANK_MIX.length - 1]![0];
    for (const [r, share] of RANK_MIX) {
      if (u < share) {
        rank = r;
        break;
      }
      u -= share;
    }
    return {
      id: `adapter-${String(i).padStart(5, '0')}`,
      rate: (w / total) * meanRate * adapters,
      rank,
    };
  });
  shuffleInPlace(catalog, source);
  return catalog;
}
