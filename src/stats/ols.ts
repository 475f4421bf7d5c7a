/** Ordinary least squares with an intercept, solved by normal equations (few features, small n). */
export interface OlsFit {
  intercept: number;
  coefficients: number[];
  r2: number;
  rmse: number;
  looRmse: number;
  maxAbsPctError: number;
  n: number;
}

/** A design whose normal equations have no unique solution. */
export class SingularDesignError extends Error {}

/** Solves a x = b by Gauss-Jordan elimination with partial pivoting (small, dense systems). */
export function solve(a: number[][], b: number[]): number[] {
  const n = b.length;
  const m = a.map((row, i) => [...row, b[i]!]);
  for (let col = 0; col < n; col++) {
    let pivot = col;
    for (let r = col + 1; r < n; r++)
      if (Math.abs(m[r]![col]!) > Math.abs(m[pivot]![col]!)) pivot = r;
    [m[col], m[pivot]] = [m[pivot]!, m[col]!];
    const p = m[col]![col]!;
    if (Math.abs(p) < 1e-12)
      throw new SingularDesignError('singular design matrix: a feature is constant or collinear');
    for (let r = 0; r < n; r++) {
      if (r === col) continue;
      const f = m[r]![col]! / p;
      for (let c = col; c <= n; c++) m[r]![c]! -= f * m[col]![c]!;
    }
  }
  return m.map((row, i) => row[n]! / row[i]!);
}

/** X'X of a design's rows. */
function gram(rows: number[][]): number[][] {
  const k = rows[0]?.length ?? 0;
  const xtx = Array.from({ length: k }, () => new Array<number>(k).fill(0));
  for (const row of rows)
    for (let a = 0; a < k; a++) for (let b = 0; b < k; b++) xtx[a]![b]! += row[a]! * row[b]!;
  return xtx;
}

function fitRaw(xs: number[][], ys: number[], withIntercept: boolean): number[] {
  const rows = xs.map((x) => (withIntercept ? [1, ...x] : x));
  const xty = new Array<number>(rows[0]!.length).fill(0);
  rows.forEach((row, i) => row.forEach((v, a) => (xty[a]! += v * ys[i]!)));
  return solve(gram(rows), xty);
}

function fitRawOrNull(xs: number[][], ys: number[], withIntercept: boolean): number[] | null {
  try {
    return fitRaw(xs, ys, withIntercept);
  } catch (e) {
    if (e instanceof SingularDesignError) return null;
    throw e;
  }
}

/**
 * The columns of a design, in order, that the columns kept before them do not determine: a
 * column is kept when what it adds beyond them (its squared residual after projecting on them,
 * by a Cholesky factor of X'X grown one column at a time) is not ~0. Least squares on the kept
 * columns never meets a singular design.
 */
export function independentColumns(xs: number[][]): number[] {
  const g = gram(xs);
  const kept: number[] = [];
  const factor: number[][] = []; // rows of the Cholesky factor of the kept columns' X'X
  for (let j = 0; j < g.length; j++) {
    const v: number[] = [];
    kept.forEach((k, i) => {
      v.push((g[k]![j]! - v.reduce((s, x, l) => s + x * factor[i]![l]!, 0)) / factor[i]![i]!);
    });
    const residual = g[j]![j]! - v.reduce((s, x) => s + x * x, 0);
    if (residual > 1e-9 * g[j]![j]!) {
      kept.push(j);
      factor.push([...v, Math.sqrt(residual)]);
    }
  }
  return kept;
}

export function ols(xs: number[][], ys: number[], withIntercept = true): OlsFit {
  if (xs.length !== ys.length || xs.length === 0)
    throw new Error('ols needs matching, non-empty data');
  const beta = fitRaw(xs, ys, withIntercept);
  const predict = (b: number[], x: number[]): number =>
    withIntercept
      ? b[0]! + x.reduce((s, v, i) => s + v * b[i + 1]!, 0)
      : x.reduce((s, v, i) => s + v * b[i]!, 0);
  const mean = ys.reduce((s, y) => s + y, 0) / ys.length;
  let ssr = 0;
  let sst = 0;
  let maxPct = 0;
  ys.forEach((y, i) => {
    const e = y - predict(beta, xs[i]!);
    ssr += e * e;
    sst += (y - mean) ** 2;
    if (y !== 0) maxPct = Math.max(maxPct, (100 * Math.abs(e)) / Math.abs(y));
  });
  // The leave-one-out error is a diagnostic of the fit, not part of it: where leaving a row out
  // makes the design singular (the one row where a feature is not zero), it is undefined (NaN)
  // and the fit itself stands.
  let loo = 0;
  if (xs.length > xs[0]!.length + 2) {
    for (let i = 0; i < xs.length && Number.isFinite(loo); i++) {
      const b = fitRawOrNull(
        xs.filter((_, j) => j !== i),
        ys.filter((_, j) => j !== i),
        withIntercept,
      );
      loo = b ? loo + (ys[i]! - predict(b, xs[i]!)) ** 2 : NaN;
    }
  }
  return {
    intercept: withIntercept ? beta[0]! : 0,
    coefficients: withIntercept ? beta.slice(1) : beta,
    r2: sst > 0 ? 1 - ssr / sst : 1,
    rmse: Math.sqrt(ssr / ys.length),
    looRmse: Math.sqrt(loo / ys.length),
    maxAbsPctError: maxPct,
    n: ys.length,
  };
}
