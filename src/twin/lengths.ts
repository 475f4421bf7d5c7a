import type { LengthDistribution } from './profile.js';
import type { UniformSource } from './random.js';

export type RequestLengthSpec =
  | { kind: 'sharegpt' }
  | { kind: 'fixed'; input: number; output: number }
  | { kind: 'empirical'; samples: Array<[number, number]> };

export interface RequestLengthSampler {
  /** Draws one request; writes prompt and output token counts into `out`. */
  sample(out: { prompt: number; output: number }): void;
}

/** Inverse CDF of log-linearly interpolated quantile knots. */
export function quantileAt(knots: ReadonlyArray<readonly [number, number]>, u: number): number {
  for (let i = 1; i < knots.length; i++) {
    const [p1, q1] = knots[i]!;
    if (u <= p1) {
      const [p0, q0] = knots[i - 1]!;
      const w = p1 > p0 ? (u - p0) / (p1 - p0) : 0;
      return Math.exp(Math.log(q0) + w * (Math.log(q1) - Math.log(q0)));
    }
  }
  return knots[knots.length - 1]![1];
}

/** Exact mean and variance of the integer lengths drawn by `quantileAt` (midpoint rule, fine grid). */
export function knotMoments(knots: ReadonlyArray<readonly [number, number]>): {
  mean: number;
  std: number;
} {
  const n = 20_000;
  let s = 0;
  let s2 = 0;
  for (let i = 0; i < n; i++) {
    const v = Math.round(quantileAt(knots, (i + 0.5) / n));
    s += v;
    s2 += v * v;
  }
  const mean = s / n;
  return { mean, std: Math.sqrt(Math.max(0, s2 / n - mean * mean)) };
}

export function createLengthSampler(
  spec: RequestLengthSpec,
  distribution: LengthDistribution,
  source: UniformSource,
): RequestLengthSampler {
  switch (spec.kind) {
    case 'fixed':
      return {
        sample(out) {
          out.prompt = spec.input;
          out.output = spec.output;
        },
      };
    case 'empirical': {
      const samples = spec.samples;
      return {
        sample(out) {
          const pick = samples[Math.floor(source.next() * samples.length)]!;
          out.prompt = pick[0];
          out.output = pick[1];
        },
      };
    }
    case 'sharegpt': {
      const { prompt, output, maxTotalTokens } = distribution;
      return {
        sample(out) {
          out.prompt = Math.round(quantileAt(prompt, source.next()));
          // The dataset keeps prompt + output <= maxTotalTokens: redraw the output until it fits.
          let o = Math.round(quantileAt(output, source.next()));
          while (out.prompt + o > maxTotalTokens) o = Math.round(quantileAt(output, source.next()));
          out.output = o;
        },
      };
    }
  }
}
