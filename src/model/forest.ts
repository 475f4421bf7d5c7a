import { RandomForestRegression } from 'ml-random-forest';

/**
 * A regression forest in a compact form: each tree is a flat array of nodes, four numbers a node:
 * [feature, threshold, left, right] for a split (go left when x[feature] < threshold, as ml-cart
 * does) and [-1, value, 0, 0] for a leaf. ml-random-forest's own toJSON repeats the options in
 * every node (hundreds of MB for a modest forest); this keeps the same predictions in a few MB.
 */
export interface CompactForest {
  trees: number[][];
}

export interface ForestHyperparameters {
  nEstimators: number;
  maxFeatures: number;
  maxDepth: number;
  minNumSamples: number;
}

/** The parts of ml-cart's TreeNode this module reads (the package ships no types for them). */
interface MlTreeNode {
  left?: MlTreeNode;
  right?: MlTreeNode;
  splitColumn?: number;
  splitValue?: number;
  distribution?: number;
}
interface MlForestInternals {
  estimators: Array<{ root: MlTreeNode }>;
  indexes: number[][];
}

function encodeTree(root: MlTreeNode, columns: number[]): number[] {
  const nodes: number[] = [];
  const visit = (node: MlTreeNode): number => {
    const at = nodes.length / 4;
    nodes.push(-1, 0, 0, 0);
    if (node.left && node.right) {
      // ml-cart's split column indexes the tree's feature subset; map it back to the full row.
      nodes[at * 4] = columns[node.splitColumn!]!;
      nodes[at * 4 + 1] = node.splitValue!;
      nodes[at * 4 + 2] = visit(node.left);
      nodes[at * 4 + 3] = visit(node.right);
    } else {
      nodes[at * 4 + 1] = node.distribution!;
    }
    return at;
  };
  visit(root);
  return nodes;
}

/**
 * The forest laid out for walking: every tree's nodes in one run of typed arrays, children as
 * absolute indexes. Walks read a third of the memory of the number arrays, contiguously, and
 * take half the time; the leaves and their summing order are the same, so are the predictions.
 */
interface PackedForest {
  feature: Int32Array;
  /** A split's threshold, or a leaf's value. */
  threshold: Float64Array;
  left: Int32Array;
  right: Int32Array;
  roots: Int32Array;
}

const packed = new WeakMap<CompactForest, PackedForest>();

function packedForest(forest: CompactForest): PackedForest {
  const known = packed.get(forest);
  if (known) return known;
  const nodes = forest.trees.reduce((s, t) => s + t.length / 4, 0);
  const p: PackedForest = {
    feature: new Int32Array(nodes),
    threshold: new Float64Array(nodes),
    left: new Int32Array(nodes),
    right: new Int32Array(nodes),
    roots: new Int32Array(forest.trees.length),
  };
  let at = 0;
  forest.trees.forEach((tree, k) => {
    p.roots[k] = at;
    for (let i = 0; i < tree.length / 4; i++) {
      p.feature[at + i] = tree[i * 4]!;
      p.threshold[at + i] = tree[i * 4 + 1]!;
      p.left[at + i] = at + tree[i * 4 + 2]!;
      p.right[at + i] = at + tree[i * 4 + 3]!;
    }
    at += tree.length / 4;
  });
  packed.set(forest, p);
  return p;
}

function leafOf(p: PackedForest, root: number, x: readonly number[]): number {
  let i = root;
  for (;;) {
    const feature = p.feature[i]!;
    if (feature < 0) return p.threshold[i]!;
    i = x[feature]! < p.threshold[i]! ? p.left[i]! : p.right[i]!;
  }
}

/**
 * The forest's prediction at x and, for each feature f, at x with x[f] replaced by moved[f]: the
 * numbers `predict` gives on those rows, bit for bit (the same leaves summed in the same order),
 * at far less than one walk per row. A tree's path to x is shared by every moved row up to the
 * first node that splits on the moved feature, so only trees whose path splits on it are walked
 * again, and only from that node.
 */
export function predictWithEachFeatureMoved(
  forest: CompactForest,
  x: readonly number[],
  moved: readonly number[],
): { here: number; moved: number[] } {
  const { feature: featureOf, threshold, left, right, roots } = packedForest(forest);
  const features = x.length;
  let here = 0;
  const sums = new Float64Array(features);
  const firstSplit = new Int32Array(features);
  for (let k = 0; k < roots.length; k++) {
    firstSplit.fill(-1);
    let i = roots[k]!;
    for (;;) {
      const feature = featureOf[i]!;
      if (feature < 0) break;
      if (firstSplit[feature] === -1) firstSplit[feature] = i;
      i = x[feature]! < threshold[i]! ? left[i]! : right[i]!;
    }
    const leaf = threshold[i]!;
    here += leaf;
    for (let f = 0; f < features; f++) {
      const from = firstSplit[f]!;
      if (from < 0 || moved[f] === x[f]) {
        sums[f] = sums[f]! + leaf;
        continue;
      }
      let j = from;
      for (;;) {
        const feature = featureOf[j]!;
        if (feature < 0) break;
        const value = feature === f ? moved[f]! : x[feature]!;
        j = value < threshold[j]! ? left[j]! : right[j]!;
      }
      sums[f] = sums[f]! + threshold[j]!;
    }
  }
  const n = roots.length;
  return { here: here / n, moved: Array.from(sums, (s) => s / n) };
}

/** Per-tree predictions: their spread is the forest's own uncertainty. */
export function predictTrees(forest: CompactForest, x: readonly number[]): number[] {
  const p = packedForest(forest);
  return Array.from(p.roots, (root) => leafOf(p, root, x));
}

/** The sum of the trees' leaves at x (a boosted ensemble's score; `predict` is their mean). */
export function sumOfTrees(forest: CompactForest, x: readonly number[]): number {
  const p = packedForest(forest);
  let s = 0;
  for (let k = 0; k < p.roots.length; k++) s += leafOf(p, p.roots[k]!, x);
  return s;
}

export function predict(forest: CompactForest, x: readonly number[]): number {
  return sumOfTrees(forest, x) / forest.trees.length;
}

/** Trains one ml-random-forest regressor (one target: the library silently fails on several). */
export function trainMlForest(
  xs: number[][],
  ys: number[],
  h: ForestHyperparameters,
  seed: number,
): RandomForestRegression {
  const rf = new RandomForestRegression({
    nEstimators: h.nEstimators,
    maxFeatures: h.maxFeatures,
    replacement: false,
    useSampleBagging: true,
    noOOB: true,
    seed,
    treeOptions: { maxDepth: h.maxDepth, minNumSamples: h.minNumSamples },
  });
  rf.train(xs, ys);
  return rf;
}

/** Trains with ml-random-forest and keeps the trees in compact form. */
export function trainForest(
  xs: number[][],
  ys: number[],
  h: ForestHyperparameters,
  seed: number,
): CompactForest {
  const internals = trainMlForest(xs, ys, h, seed) as unknown as MlForestInternals;
  return { trees: internals.estimators.map((e, i) => encodeTree(e.root, internals.indexes[i]!)) };
}
