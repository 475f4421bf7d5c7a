// Piscina worker: one cross-validation of the forests off the main thread (loraplan train).
import { crossValidate, type CvResult, type CvTask } from '../model/train.js';

export default function run(t: CvTask): CvResult {
  return crossValidate(t.xs, t.encoded, t.fold, t.k, t.h, t.seed, t.ceiling);
}
