export * from './model.js';
export { conformalHalfWidth, conformalUpper, fitLatencyModel, CORRECTED_FEATURES } from './fit.js';
export type { LatencyFit, LatencyObservation, OutOfFold } from './fit.js';
export * from './envelope.js';
export * from './extrapolation.js';
