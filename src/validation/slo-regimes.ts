// validate:slo's leave-regime-out split: whole regimes of runs held out of the latency fit (as
// validate:twin holds them out), so that the pairs a recommendation lands on lie outside the
// envelope of the runs fitted on, as a user's workload may. The growth of intervals and bounds
// beyond the envelope is sized on the other regimes only, as the service's is sized on regimes
// that never include the user's.
import { fitLatencyModel, type LatencyModel } from '../latency/index.js';
import { TWIN_VERSION } from '../twin/index.js';
import { LATENCY_COVERAGE, latencyObservations, profileOf } from './latency.js';
import type { MeasuredWorkload } from './recommend.js';
import { EXTRAPOLATED_METRICS, growthOf, heldOutRegimes, holdOutRegimes } from './regimes.js';
import type { RunComparison } from './comparison.js';

/** A latency model fitted without one regime, and the measured workloads that regime touches. */
export interface RegimeFit {
  regime: string;
  /** Per profile, with the growth sized on the other regimes. */
  models: Record<string, LatencyModel>;
  workloads: MeasuredWorkload[];
}

export function regimeFits(
  runs: readonly RunComparison[],
  workloads: readonly MeasuredWorkload[],
): { fits: RegimeFit[]; skipped: Array<{ regime: string; why: string }> } {
  const compared = runs.filter((r) => r.realOk && r.twinFeasible);
  const observations = latencyObservations(runs);
  const ratio = new Map(observations.map((o, i) => [o, compared[i]!.realCompletionRatio]));
  const meta = { twinVersion: TWIN_VERSION, source: 'leave-regime-out fold (validate:slo)' };
  const { cases } = holdOutRegimes(observations, (o) => ratio.get(o)!, meta);
  const fits: RegimeFit[] = [];
  const skipped: Array<{ regime: string; why: string }> = [];
  for (const regime of heldOutRegimes(observations)) {
    const held = observations.filter((o) => regime.holds(o));
    let models: Record<string, LatencyModel>;
    try {
      models = fitLatencyModel(
        observations.filter((o) => !regime.holds(o)),
        { ...meta, coverage: LATENCY_COVERAGE },
      ).models;
    } catch (e) {
      skipped.push({ regime: regime.name, why: e instanceof Error ? e.message : String(e) });
      continue;
    }
    const others = cases.filter((c) => c.regime !== regime.name);
    for (const model of Object.values(models))
      for (const metric of EXTRAPOLATED_METRICS)
        model.metrics[metric] = {
          ...model.metrics[metric],
          extrapolation: growthOf(others, metric),
        };
    const touched = new Set(held.map((o) => `${o.profile}|${o.workload}`));
    fits.push({
      regime: regime.name,
      models,
      workloads: workloads.filter((w) =>
        touched.has(`${profileOf(w.model)}|${w.model}/${w.workload}`),
      ),
    });
  }
  return { fits, skipped };
}
