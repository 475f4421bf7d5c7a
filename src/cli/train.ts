import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, relative } from 'node:path';
import { modelPath } from '../model/model.js';
import { availableParallelism } from 'node:os';
import { trainModel, type CvResult, type CvTask } from '../model/train.js';
import { SERVES_CV_CONFIDENCE } from '../model/serves.js';
import { workerPool } from '../runtime/pool.js';
import { loadProfile, PACKAGE_ROOT } from '../profiles/store.js';
import { TWIN_VERSION } from '../twin/index.js';
import { datasetPath, readDataset, withCurrentFeatures } from '../model/dataset.js';
import { intOption, parseOptions, UsageError } from './options.js';

const USAGE = `usage: loraplan train --profile P [--dataset FILE] [--out FILE] [--folds K] [--seed S]

Fits random forests (ml-random-forest) for the optimum's concurrent adapters, parallel adapters and
throughput from the workload features of a dataset built by 'loraplan dataset', choosing
hyperparameters by K-fold cross-validation (default 5), and writes the model with its metadata
(default models/forests/<profile>.json).`;

export async function trainCommand(argv: string[]): Promise<number> {
  const { values } = parseOptions(argv, {
    profile: { type: 'string' },
    dataset: { type: 'string' },
    out: { type: 'string' },
    folds: { type: 'string' },
    seed: { type: 'string' },
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (!values.profile) throw new UsageError(`--profile is required\n${USAGE}`);
  const profile = loadProfile(values.profile);
  const file = values.dataset ?? datasetPath(profile.id);
  const rows = withCurrentFeatures(readDataset(file), profile);
  if (rows.length === 0)
    throw new UsageError(
      `no dataset rows in ${file}; build them with loraplan dataset --profile ${profile.id}`,
    );
  const folds = intOption(values.folds, '--folds', 2) ?? 5;
  const seed = intOption(values.seed, '--seed', 0) ?? 1;
  const started = performance.now();
  // The grid's cross-validations run on every core; the forests are the same as on one.
  const threads = Math.max(1, availableParallelism());
  const pool = threads > 1 ? workerPool<CvTask, CvResult>('cv-worker', threads) : undefined;
  const model = await trainModel(rows, {
    profile: profile.id,
    twinVersion: TWIN_VERSION,
    datasetFile: relative(PACKAGE_ROOT, file),
    datasetSeed: rows[0]!.seed,
    servingProfile: profile,
    folds,
    seed,
    onProgress: (m) => process.stderr.write(`${m}\n`),
    ...(pool ? { crossValidate: (task: CvTask) => pool.run(task) } : {}),
  }).finally(() => pool?.destroy());
  const out = values.out ?? modelPath(profile.id);
  mkdirSync(dirname(out), { recursive: true });
  const json = JSON.stringify(model);
  writeFileSync(out, `${json}\n`);
  const t = model.targets;
  process.stdout.write(
    `${profile.id}: ${model.trainingSet.rows} workloads, hyperparameters ${JSON.stringify(model.hyperparameters)}\n` +
      `  CV paper-SMAPE: concurrent ${t.concurrent.cv.smapePaper.toFixed(2)}%, parallel ${t.parallel.cv.smapePaper.toFixed(2)}%, throughput ${t.throughput.cv.smapePaper.toFixed(2)}%\n` +
      (model.servesAtPair
        ? `  chance a pair serves: ${model.servesAtPair.pairs} simulated pairs, CV AUC ${model.servesAtPair.cv.auc.toFixed(3)}, ${(100 * model.servesAtPair.cv.starvingAboveConfidence).toFixed(1)}% of ${model.servesAtPair.cv.pairsAboveConfidence} pairs given at least ${SERVES_CV_CONFIDENCE} starve\n`
        : '') +
      `  wrote ${out} (${(json.length / 1e6).toFixed(2)} MB) in ${((performance.now() - started) / 1000).toFixed(1)} s\n`,
  );
  return 0;
}
