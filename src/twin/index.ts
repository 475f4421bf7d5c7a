// The twin's public surface: scenario contract, profile format and the simulator.
export {
  scenarioSchema,
  simulationResultSchema,
  configSchema,
  workloadSchema,
  requestLengthsSchema,
  DEFAULT_STARVATION_THRESHOLD,
  KEEPS_UP_RATIO,
  LIMITS,
  expectedArrivals,
  type Scenario,
  type ScenarioInput,
  type SimulationResult,
  type TwinConfig,
  type Workload,
} from './scenario.js';
export {
  profileSchema,
  kvCacheTokens,
  loraMsPerBatchedToken,
  cpuToGpuLoadMs,
  vllmStarts,
  type Profile,
} from './profile.js';
export { capacityTokensPerSecond, mustStarve } from './capacity.js';
export { meanLengths } from './lengths.js';
export {
  simulate,
  isStarving,
  resolveAdapters,
  TWIN_VERSION,
  type SimulateOptions,
  type TwinResult,
} from './simulate.js';
export type { StepComponents, StepObserver, StepTiming, StepView, StepStats } from './engine.js';
