import { z } from 'zod';
import { within, type OutsideFeature } from '../envelope/index.js';
import { FEATURE_NAMES } from './features.js';

/** What the forests were trained on: each feature's range, rate-group counts and length kinds. */
export const envelopeSchema = z.object({
  features: z.record(z.string(), z.tuple([z.number(), z.number()])),
  rateGroups: z.tuple([z.number(), z.number()]),
  lengthKinds: z.array(z.enum(['sharegpt', 'fixed', 'empirical'])),
});
export type Envelope = z.infer<typeof envelopeSchema>;

interface EnvelopeWorkload {
  rates: number[];
  requestLengths?: { kind: 'sharegpt' | 'fixed' | 'empirical' };
}

/** The envelope of training rows: their features (in FEATURE_NAMES order) and workloads. */
export function envelopeOf(
  rows: Array<{ features: number[]; workload: EnvelopeWorkload }>,
): Envelope {
  const range = (values: number[]): [number, number] => [Math.min(...values), Math.max(...values)];
  return {
    features: Object.fromEntries(
      FEATURE_NAMES.map((name, j) => [name, range(rows.map((r) => r.features[j]!))]),
    ),
    rateGroups: range(rows.map((r) => r.workload.rates.length)),
    lengthKinds: [
      ...new Set(rows.map((r) => r.workload.requestLengths?.kind ?? 'sharegpt')),
    ].sort(),
  };
}

/**
 * Where a workload falls outside the envelope; none means inside. Trees predict a constant
 * beyond the edge of their data, so an answer out there is an extrapolation nobody measured.
 */
export function outsideEnvelope(
  envelope: Envelope,
  workload: EnvelopeWorkload,
  features: readonly number[],
): OutsideFeature[] {
  const outside: OutsideFeature[] = [];
  FEATURE_NAMES.forEach((name, j) => {
    const trained = envelope.features[name];
    if (trained && !within(features[j]!, trained))
      outside.push({ feature: name, value: features[j]!, trained });
  });
  if (!within(workload.rates.length, envelope.rateGroups))
    outside.push({
      feature: 'rateGroups',
      value: workload.rates.length,
      trained: envelope.rateGroups,
    });
  const kind = workload.requestLengths?.kind ?? 'sharegpt';
  if (!envelope.lengthKinds.includes(kind))
    outside.push({ feature: 'requestLengths.kind', value: kind, trained: envelope.lengthKinds });
  return outside;
}
