// Gradient-boosted trees for a yes/no label (logistic loss, Newton steps): small trees grown one
// after another on quantile bins of each feature, each fitting what the ones before it left.
// Deterministic (no sampling; ties go to the first feature and bin), and stored as a
// CompactForest whose leaves already carry the learning rate.
import { sumOfTrees, type CompactForest } from './forest.js';

export interface BoostHyperparameters {
  rounds: number;
  depth: number;
  learningRate: number;
  /** No leaf holds fewer rows. */
  minLeaf: number;
  /** Candidate thresholds per feature: its quantiles. */
  bins: number;
  /** Added to a leaf's curvature: shrinks leaves of few or certain rows. */
  l2: number;
}

export interface BoostedClassifier {
  /** Log-odds before any tree: the labels' base rate. */
  base: number;
  trees: CompactForest;
}

/** The chance of the label at x. */
export function boostedProbability(model: BoostedClassifier, x: readonly number[]): number {
  return 1 / (1 + Math.exp(-(model.base + sumOfTrees(model.trees, x))));
}

export function trainBoostedClassifier(
  xs: readonly (readonly number[])[],
  labels: readonly boolean[],
  h: BoostHyperparameters,
): BoostedClassifier {
  const n = xs.length;
  const d = xs[0]?.length ?? 0;
  // Thresholds: distinct quantiles of each feature. A row's bin is how many lie at or below it,
  // so "bin <= b" is "x < thresholds[b]", the CompactForest's own test.
  const thresholds = Array.from({ length: d }, (_, k) => {
    const sorted = xs.map((x) => x[k]!).sort((a, b) => a - b);
    const cuts: number[] = [];
    for (let b = 1; b < h.bins; b++) {
      const v = sorted[Math.floor((b * n) / h.bins)]!;
      if (cuts[cuts.length - 1] !== v) cuts.push(v);
    }
    return cuts;
  });
  const binOf = xs.map((x) =>
    x.map((v, k) => {
      const cuts = thresholds[k]!;
      let lo = 0;
      let hi = cuts.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (cuts[mid]! <= v) lo = mid + 1;
        else hi = mid;
      }
      return lo;
    }),
  );
  const positives = labels.filter(Boolean).length;
  const rate = Math.min(1 - 1e-6, Math.max(1e-6, positives / Math.max(1, n)));
  const base = Math.log(rate / (1 - rate));
  const score = new Float64Array(n).fill(base);
  const gradient = new Float64Array(n);
  const curvature = new Float64Array(n);
  const trees: number[][] = [];
  for (let round = 0; round < h.rounds; round++) {
    for (let i = 0; i < n; i++) {
      const p = 1 / (1 + Math.exp(-score[i]!));
      gradient[i] = (labels[i] ? 1 : 0) - p;
      curvature[i] = Math.max(1e-6, p * (1 - p));
    }
    const nodes: number[] = [];
    const grow = (rows: number[], depth: number): number => {
      const at = nodes.length / 4;
      nodes.push(-1, 0, 0, 0);
      let g = 0;
      let c = 0;
      for (const i of rows) {
        g += gradient[i]!;
        c += curvature[i]!;
      }
      const split = depth > 0 && rows.length >= 2 * h.minLeaf ? bestSplit(rows, g, c) : undefined;
      if (!split) {
        nodes[at * 4 + 1] = (h.learningRate * g) / (c + h.l2);
        return at;
      }
      const left = rows.filter((i) => binOf[i]![split.feature]! <= split.bin);
      const right = rows.filter((i) => binOf[i]![split.feature]! > split.bin);
      nodes[at * 4] = split.feature;
      nodes[at * 4 + 1] = thresholds[split.feature]![split.bin]!;
      nodes[at * 4 + 2] = grow(left, depth - 1);
      nodes[at * 4 + 3] = grow(right, depth - 1);
      return at;
    };
    const bestSplit = (rows: number[], g: number, c: number) => {
      let best: { feature: number; bin: number; gain: number } | undefined;
      for (let k = 0; k < d; k++) {
        const bins = thresholds[k]!.length + 1;
        const gs = new Float64Array(bins);
        const cs = new Float64Array(bins);
        const counts = new Int32Array(bins);
        for (const i of rows) {
          const b = binOf[i]![k]!;
          gs[b]! += gradient[i]!;
          cs[b]! += curvature[i]!;
          counts[b]!++;
        }
        let gl = 0;
        let cl = 0;
        let nl = 0;
        for (let b = 0; b < bins - 1; b++) {
          gl += gs[b]!;
          cl += cs[b]!;
          nl += counts[b]!;
          if (nl < h.minLeaf || rows.length - nl < h.minLeaf) continue;
          const gain =
            (gl * gl) / (cl + h.l2) + (g - gl) ** 2 / (c - cl + h.l2) - (g * g) / (c + h.l2);
          if (gain > 0 && (!best || gain > best.gain)) best = { feature: k, bin: b, gain };
        }
      }
      return best;
    };
    grow(
      Array.from({ length: n }, (_, i) => i),
      h.depth,
    );
    trees.push(nodes);
    const tree = { trees: [nodes] };
    for (let i = 0; i < n; i++) score[i]! += sumOfTrees(tree, xs[i]!);
  }
  return { base, trees: { trees } };
}
