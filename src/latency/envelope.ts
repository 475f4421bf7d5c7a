import { z } from 'zod';
import { within, type OutsideFeature } from '../envelope/index.js';
import type { RequestLengthSpec } from '../twin/lengths.js';

/**
 * What the latency correction and its intervals were measured on: the ranges of the real runs'
 * workloads and server flags. The intervals' coverage is a measured fact inside these ranges
 * only; outside them the corrected figures still come from the twin, but how often the real p99
 * stays under the bound is unknown, and an answer must say so rather than promise.
 */
const range = z.tuple([z.number(), z.number()]);
export const latencyEnvelopeSchema = z.object({
  /** Request rate of one adapter, req/s (adapters that send nothing are not counted). */
  ratePerAdapter: range,
  /**
   * A workload's mean rate over the server's adapters, req/s: how light or heavy it is as a
   * whole, which a single adapter's rate inside the measured range does not tell. Absent in
   * models written before it was read.
   */
  meanRatePerAdapter: range.optional(),
  adapterRank: range,
  maxLoraRank: range,
  concurrentAdapters: range,
  parallelAdapters: range,
  maxNumBatchedTokens: range,
  maxNumSeqs: range,
  /** The window a p99 is read over: a shorter one holds fewer bursts. */
  durationSeconds: range,
  /** Request-length distributions measured (lengthLabel). */
  requestLengths: z.array(z.string()),
});
export type LatencyEnvelope = z.infer<typeof latencyEnvelopeSchema>;

/** The parts of a simulated scenario the envelope reads; absent parts are not checked. */
export interface LatencyCase {
  rates: readonly number[];
  ranks: readonly number[];
  requestLengths?: RequestLengthSpec;
  config?: {
    maxLoras: number;
    maxCpuLoras: number;
    maxLoraRank: number;
    maxNumBatchedTokens?: number;
    maxNumSeqs?: number;
  };
  durationSeconds?: number;
}

/** A request-length distribution by name: the default ShareGPT one, a scaled one, or a kind. */
export function lengthLabel(spec: RequestLengthSpec | undefined): string {
  if (!spec || spec.kind === 'sharegpt')
    return spec?.scale !== undefined && spec.scale !== 1 ? `sharegpt x${spec.scale}` : 'sharegpt';
  return spec.kind;
}

/**
 * A workload's mean request rate per adapter: the mean of its rate groups (adapters cycle through
 * them), idle groups included.
 */
export function meanRateOf(rates: readonly number[]): number {
  return rates.length === 0 ? 0 : rates.reduce((s, r) => s + r, 0) / rates.length;
}

/** One measured run as the envelope reads it: its workload and server flags, flat. */
export interface MeasuredCase {
  rates: readonly number[];
  ranks: readonly number[];
  /** lengthLabel of its request lengths. */
  lengths: string;
  maxLoras: number;
  maxCpuLoras: number;
  maxLoraRank: number;
  maxNumBatchedTokens: number;
  maxNumSeqs: number;
  durationSeconds: number;
}

/** The envelope of the runs a latency model was fitted and its intervals measured on. */
export function latencyEnvelopeOf(cases: readonly MeasuredCase[]): LatencyEnvelope {
  if (cases.length === 0) throw new Error('a latency envelope needs at least one measured run');
  const span = (f: (c: MeasuredCase) => readonly number[]): [number, number] => {
    const values = cases.flatMap(f);
    return [Math.min(...values), Math.max(...values)];
  };
  return {
    ratePerAdapter: span((c) => c.rates.filter((r) => r > 0)),
    meanRatePerAdapter: span((c) => [meanRateOf(c.rates)]),
    adapterRank: span((c) => c.ranks),
    maxLoraRank: span((c) => [c.maxLoraRank]),
    concurrentAdapters: span((c) => [c.maxCpuLoras]),
    parallelAdapters: span((c) => [c.maxLoras]),
    maxNumBatchedTokens: span((c) => [c.maxNumBatchedTokens]),
    maxNumSeqs: span((c) => [c.maxNumSeqs]),
    durationSeconds: span((c) => [c.durationSeconds]),
    requestLengths: [...new Set(cases.map((c) => c.lengths))].sort(),
  };
}

/**
 * Where a case falls outside the envelope, each with the measured range; none means inside. One
 * adapter beyond the measured rates or ranks is enough: the coverage was not measured for its
 * requests.
 */
export function outsideLatencyEnvelope(
  envelope: LatencyEnvelope,
  c: LatencyCase,
): OutsideFeature[] {
  const outside: OutsideFeature[] = [];
  /** Values are checked at their extremes: the one outside (the lower first) is reported. */
  const check = (feature: string, values: readonly number[], trained: [number, number]) => {
    if (values.length === 0) return;
    const lowest = Math.min(...values);
    const highest = Math.max(...values);
    if (!within(lowest, trained)) outside.push({ feature, value: lowest, trained });
    else if (!within(highest, trained)) outside.push({ feature, value: highest, trained });
  };
  check(
    'ratePerAdapter',
    c.rates.filter((r) => r > 0),
    envelope.ratePerAdapter,
  );
  if (envelope.meanRatePerAdapter)
    check(
      'meanRatePerAdapter',
      [meanRateOf(c.rates)].filter((r) => r > 0),
      envelope.meanRatePerAdapter,
    );
  check('adapterRank', c.ranks, envelope.adapterRank);
  if (c.config) {
    check('maxLoraRank', [c.config.maxLoraRank], envelope.maxLoraRank);
    check('concurrentAdapters', [c.config.maxCpuLoras], envelope.concurrentAdapters);
    check('parallelAdapters', [c.config.maxLoras], envelope.parallelAdapters);
    if (c.config.maxNumBatchedTokens !== undefined)
      check('maxNumBatchedTokens', [c.config.maxNumBatchedTokens], envelope.maxNumBatchedTokens);
    if (c.config.maxNumSeqs !== undefined)
      check('maxNumSeqs', [c.config.maxNumSeqs], envelope.maxNumSeqs);
  }
  if (c.durationSeconds !== undefined)
    check('durationSeconds', [c.durationSeconds], envelope.durationSeconds);
  const lengths = lengthLabel(c.requestLengths);
  if (!envelope.requestLengths.includes(lengths))
    outside.push({ feature: 'requestLengths', value: lengths, trained: envelope.requestLengths });
  return outside;
}
