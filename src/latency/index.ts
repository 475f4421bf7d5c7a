export * from './model.js';
export { conformalHalfWidth, fitLatencyModel, CORRECTED_FEATURES } from './fit.js';
export type { LatencyFit, LatencyObservation, OutOfFold } from './fit.js';
