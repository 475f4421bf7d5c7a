import { solve } from './ols.js';

export interface NlsFit {
  parameters: number[];
  /** Sum of squared residuals at the solution. */
  sse: number;
  iterations: number;
}

/**
 * Nonlinear least squares by Levenberg-Marquardt: minimises sum(residuals(p)^2) from `initial`,
 * with a forward-difference Jacobian. Small problems only (a handful of parameters, hundreds of
 * residuals); deterministic, so the same data give the same parameters bit for bit.
 */
export function levenbergMarquardt(
  residuals: (p: readonly number[]) => number[],
  initial: readonly number[],
  options: { maxIterations?: number; tolerance?: number } = {},
): NlsFit {
  const maxIterations = options.maxIterations ?? 200;
  const tolerance = options.tolerance ?? 1e-12;
  const sse = (r: readonly number[]) => r.reduce((s, v) => s + v * v, 0);
  let p = [...initial];
  let r = residuals(p);
  let cost = sse(r);
  let damping = 1e-2;
  let iterations = 0;
  for (; iterations < maxIterations; iterations++) {
    const jacobian = p.map((pj, j) => {
      const h = 1e-6 * Math.max(1, Math.abs(pj));
      const shifted = residuals(p.map((v, k) => (k === j ? v + h : v)));
      return shifted.map((v, i) => (v - r[i]!) / h);
    }); // column-major: jacobian[j][i] = d r_i / d p_j
    const jtj = p.map((_, a) =>
      p.map((_, b) => jacobian[a]!.reduce((s, v, i) => s + v * jacobian[b]![i]!, 0)),
    );
    const jtr = p.map((_, a) => jacobian[a]!.reduce((s, v, i) => s + v * r[i]!, 0));
    // A parameter the residuals no longer feel (a ceiling far above every figure) has a zero
    // column: damping it by a floor keeps the step defined.
    const floor = 1e-9 * Math.max(1e-12, ...jtj.map((row, a) => row[a]!));
    let improved = false;
    while (damping < 1e12) {
      let step: number[];
      try {
        step = solve(
          jtj.map((row, a) => row.map((v, b) => (a === b ? v + damping * Math.max(v, floor) : v))),
          jtr.map((v) => -v),
        );
      } catch {
        damping *= 4;
        continue;
      }
      const candidate = p.map((v, j) => v + step[j]!);
      const rc = residuals(candidate);
      const cc = sse(rc);
      if (cc < cost) {
        const gain = cost - cc;
        p = candidate;
        r = rc;
        cost = cc;
        damping = Math.max(damping / 3, 1e-12);
        improved = gain > tolerance * Math.max(1, cost);
        break;
      }
      damping *= 4;
    }
    if (!improved) break;
  }
  return { parameters: p, sse: cost, iterations };
}
