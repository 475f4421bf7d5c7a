import { createHash } from 'node:crypto';
import type { ServingRun } from '../calibrate/runs.js';
import { parseScenario } from '../runtime/scenario-runner.js';
import type { Profile } from '../twin/profile.js';
import type { IngestedRun } from './ingest.js';

/**
 * An ingested run as the serving fit reads a measured one: its scenario (flags, per-adapter rates
 * cycled over the adapters served, ranks, window) and the figures the fit compares with the twin.
 * Offered tokens come from the profile's request-length means: the prompt pool is not in the run.
 */
export function servingRunOf(run: IngestedRun, profile: Profile, key: string): ServingRun {
  const f = run.flags;
  const lengths = profile.requestLengths.targets;
  const adapters = f.maxCpuLoras;
  const rates = f.adapterRates.length > 0 ? f.adapterRates : [0];
  const offered =
    Array.from({ length: adapters }, (_, i) => rates[i % rates.length]!).reduce(
      (a, b) => a + b,
      0,
    ) *
    (lengths.promptMean + lengths.outputMean);
  const s = run.summary;
  const throughput = s ? s.inputTokensPerSecond + s.outputTokensPerSecond : NaN;
  const [workload = key, name = key] = key.split('/').slice(-2);
  return {
    row: {
      mean_itl_ms: s ? String(s.itlMs.mean) : '',
      total_tok_s: s ? String(throughput) : '',
      throughput_vs_ideal: s && offered > 0 ? String(throughput / offered) : '',
    },
    model: profile.model,
    workload,
    run: name,
    ok: s !== undefined,
    scenario: parseScenario({
      profile: profile.id,
      config: {
        maxLoras: f.maxLoras,
        maxCpuLoras: f.maxCpuLoras,
        maxLoraRank: f.maxLoraRank,
        maxNumBatchedTokens: f.maxNumBatchedTokens,
        maxNumSeqs: f.maxNumSeqs,
      },
      workload: {
        rates,
        ranks: f.adapterRanks.length > 0 ? f.adapterRanks : [f.maxLoraRank],
        adapterCount: adapters,
        maxInFlightRequests: 'measurement',
      },
      durationSeconds: Number.isFinite(f.totalTimeSeconds) ? f.totalTimeSeconds : 3600,
      seed: 1,
    }),
  };
}

/** A calibrated profile's id: gpu/model, then a hash of its content, as derived ones carry. */
export function calibratedProfile(
  start: Profile,
  fitted: Profile,
  source: Record<string, unknown>,
): Profile {
  const body: Omit<Profile, 'id'> & { id?: string } = {
    ...fitted,
    evidence: 'calibrated' as const,
    derivation: { ...(start.derivation ?? {}), calibratedFrom: source, startedFrom: start.id },
  };
  delete body.id;
  const hash = createHash('sha256').update(JSON.stringify(body)).digest('hex').slice(0, 12);
  return { ...body, id: `${start.gpu}/${start.model}@${hash}` };
}
