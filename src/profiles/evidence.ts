import { evidenceOf, type Profile } from '../twin/profile.js';

const ERROR_LABELS: Record<string, string> = {
  throughputMapePct: 'throughput MAPE',
  verdictDisagreementPct: 'starvation verdicts wrong',
  kvCacheMaxAbsPct: 'KV cache worst error',
  itlP99MapePct: 'p99 ITL MAPE',
  ttftP99MapePct: 'p99 TTFT MAPE',
};

/**
 * What an answer on a profile that was not measured must say: it rests on a datasheet and a
 * config, with the error measured for such profiles leave one model out. Undefined when measured.
 */
export function evidenceWarning(profile: Profile): string | undefined {
  const evidence = evidenceOf(profile);
  if (evidence === 'measured') return undefined;
  if (evidence === 'calibrated')
    return `profile "${profile.id}" was calibrated from the user's own measurements (loraplan calibrate): its errors are those the fit reported, not validated ones`;
  const derivation = profile.derivation as
    { fitOn?: string[]; expectedError?: Record<string, number> } | undefined;
  const errors = Object.entries(derivation?.expectedError ?? {})
    .map(([k, v]) => `${ERROR_LABELS[k] ?? k} ${v}%`)
    .join(', ');
  return `profile "${profile.id}" is derived from a datasheet and a model config, not measured (factors from ${(derivation?.fitOn ?? []).join(', ')}): expect errors like those of derived profiles validated leave one model out (${errors || 'not yet validated'}; docs/validation/derived.md), and more on a GPU other than the measured H100. Measure it with loraplan measure to do better`;
}

export function withEvidenceWarning<T extends { warnings: string[] }>(
  profile: Profile,
  answer: T,
): T {
  const warning = evidenceWarning(profile);
  return warning ? { ...answer, warnings: [...answer.warnings, warning] } : answer;
}
