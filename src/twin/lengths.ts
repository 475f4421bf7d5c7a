import type { LengthDistribution } from './profile.js';
import type { UniformSource } from './random.js';

export type RequestLengthSpec =
  | { kind: 'sharegpt'; scale?: number }
  | { kind: 'fixed'; input: number; output: number }
  | { kind: 'empirical'; samples: Array<[number, number]> };

export interface RequestLengthSampler {
  /** Draws one request; writes prompt and output token counts into `out`. */
  sample(out: { prompt: number; output: number }): void;
}

/** Inverse CDF of log-linearly interpolated quantile knots. */
export function quantileAt(knots: ReadonlyArray<readonly [number, number]>, u: number): number {
  for (let i = 1; i < knots.length; i++) if (u <= knots[i]![0]) return between(knots, i, u);
  return knots[knots.length - 1]![1];
}

/** The interpolation between knots i - 1 and i, where u falls. */
function between(knots: ReadonlyArray<readonly [number, number]>, i: number, u: number): number {
  const [p1, q1] = knots[i]!;
  const [p0, q0] = knots[i - 1]!;
  const w = p1 > p0 ? (u - p0) / (p1 - p0) : 0;
  return Math.exp(Math.log(q0) + w * (Math.log(q1) - Math.log(q0)));
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

/**
 * The inverse CDF tabulated at 2^16 equally likely points (each the length at its cell's centre),
 * so a draw is one table lookup instead of a log and an exp: sampling was a quarter of the run time
 * of the heaviest workloads, where a million requests arrive.
 */
const TABLE_SIZE = 1 << 16;
const tables = new WeakMap<object, Map<number, Int32Array>>();
function quantileTable(knots: ReadonlyArray<readonly [number, number]>, scale: number): Int32Array {
  let byScale = tables.get(knots);
  if (!byScale) tables.set(knots, (byScale = new Map()));
  let table = byScale.get(scale);
  if (!table) {
    // A scaled length keeps the knots' range: the dataset's filter bounds do not move.
    const lo = knots[0]![1];
    const hi = knots[knots.length - 1]![1];
    table = new Int32Array(TABLE_SIZE);
    // The points rise, so the knot they fall after is found by walking, not searched each time:
    // the same values as quantileAt, at start-up cost a CLI run notices.
    let k = 1;
    for (let i = 0; i < TABLE_SIZE; i++) {
      const u = (i + 0.5) / TABLE_SIZE;
      while (k < knots.length && u > knots[k]![0]) k++;
      const q = k < knots.length ? between(knots, k, u) : knots[knots.length - 1]![1];
      table[i] = Math.round(Math.min(hi, Math.max(lo, scale * q)));
    }
    byScale.set(scale, table);
  }
  return table;
}

const tableMeans = new WeakMap<Int32Array, number>();
/** Mean of a quantile table, remembered: features are computed per recommendation. */
function mean(table: Int32Array): number {
  let m = tableMeans.get(table);
  if (m === undefined) {
    let s = 0;
    for (let i = 0; i < table.length; i++) s += table[i]!;
    m = s / table.length;
    tableMeans.set(table, m);
  }
  return m;
}

/** Mean prompt and output tokens a spec draws (before the prompt + output filter). */
export function meanLengths(
  spec: RequestLengthSpec,
  distribution: LengthDistribution,
): { prompt: number; output: number } {
  switch (spec.kind) {
    case 'fixed':
      return { prompt: spec.input, output: spec.output };
    case 'empirical': {
      const n = spec.samples.length;
      return {
        prompt: spec.samples.reduce((s, x) => s + x[0], 0) / n,
        output: spec.samples.reduce((s, x) => s + x[1], 0) / n,
      };
    }
    case 'sharegpt': {
      return {
        prompt: mean(quantileTable(distribution.prompt, spec.scale ?? 1)),
        output: mean(quantileTable(distribution.output, spec.scale ?? 1)),
      };
    }
  }
}

/** The longest request (prompt + output tokens) a length spec can draw. */
export function longestRequest(spec: RequestLengthSpec, distribution: LengthDistribution): number {
  switch (spec.kind) {
    case 'fixed':
      return spec.input + spec.output;
    case 'empirical':
      return spec.samples.reduce((m, [p, o]) => Math.max(m, p + o), 0);
    case 'sharegpt':
      // Scaled draws keep the knots' range, and the dataset's filter caps their sum.
      return Math.min(
        distribution.maxTotalTokens,
        distribution.prompt[distribution.prompt.length - 1]![1] +
          distribution.output[distribution.output.length - 1]![1],
      );
  }
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
      const { maxTotalTokens } = distribution;
      const prompt = quantileTable(distribution.prompt, spec.scale ?? 1);
      const output = quantileTable(distribution.output, spec.scale ?? 1);
      return {
        sample(out) {
          out.prompt = prompt[Math.floor(source.next() * TABLE_SIZE)]!;
          // The dataset keeps prompt + output <= maxTotalTokens: redraw the output until it fits.
          let o = output[Math.floor(source.next() * TABLE_SIZE)]!;
          while (out.prompt + o > maxTotalTokens)
            o = output[Math.floor(source.next() * TABLE_SIZE)]!;
          out.output = o;
        },
      };
    }
  }
}
