import { xoroshiro128plus } from 'pure-rand/generator/xoroshiro128plus';
import { uniformFloat64 } from 'pure-rand/distribution/uniformFloat64';

/** A seeded stream of uniform doubles in [0, 1). */
export interface UniformSource {
  next(): number;
}

/**
 * Independent streams per purpose (arrivals, lengths, shuffles) so that changing how many
 * numbers one consumer draws does not shift what another sees.
 */
export function seededStream(seed: number, stream: number): UniformSource {
  // Mix the stream id into the 32-bit seed with a golden-ratio multiplier (splitmix-style).
  const mixed = (Math.imul(stream + 1, 0x9e3779b9) ^ (seed | 0)) | 0;
  const rng = xoroshiro128plus(mixed);
  // Discard a few outputs: xoroshiro's first draws from nearby seeds are correlated.
  for (let i = 0; i < 8; i++) rng.next();
  return { next: () => uniformFloat64(rng) };
}

/** Exponential gap with the given rate (events per second). */
export function exponential(source: UniformSource, rate: number): number {
  return -Math.log(1 - source.next()) / rate;
}

/** Fisher-Yates shuffle in place, driven by `source`. */
export function shuffleInPlace<T>(items: T[], source: UniformSource): void {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(source.next() * (i + 1));
    const tmp = items[i] as T;
    items[i] = items[j] as T;
    items[j] = tmp;
  }
}
