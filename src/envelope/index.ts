// What a fitted model was fitted on, and how a case lies outside it: shared by the forests'
// training envelope (src/model/envelope.ts) and the latency model's (src/latency/envelope.ts),
// neither of which depends on the other.
import { z } from 'zod';

export const outsideFeatureSchema = z.object({
  feature: z.string(),
  value: z.union([z.number(), z.string()]),
  /** The training set's range (numeric features) or the values it held (length kinds). */
  trained: z.union([z.tuple([z.number(), z.number()]), z.array(z.string())]),
});
export type OutsideFeature = z.infer<typeof outsideFeatureSchema>;

/** v within [lo, hi], with relative slack for rounding: a measured row's own values are inside. */
export const within = (v: number, [lo, hi]: readonly [number, number]): boolean =>
  v >= lo - 1e-9 * Math.abs(lo) && v <= hi + 1e-9 * Math.abs(hi);
