// Formatting and error summaries for the validation reports; the summaries themselves are
// src/stats', shared with training.
export { errorSummary, median, type ErrorSummary } from '../stats/index.js';

export const pct = (v: number, digits = 1): string =>
  Number.isFinite(v) ? `${v.toFixed(digits)}%` : 'n/a';
