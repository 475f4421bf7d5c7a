// Piscina worker: runs one scenario off the main thread.
import type { Profile, Scenario, SimulationResult, StepStats } from '../twin/index.js';
import { runScenario } from './scenario-runner.js';

export interface SimulateTask {
  scenario: Scenario;
  starvationThreshold?: number;
  includeStepStats?: boolean;
  /** A profile to use instead of the shipped one of that id (calibration passes candidates). */
  profile?: Profile;
}

export type SimulateTaskResult = SimulationResult & { stepStats?: StepStats };

export default function run(task: SimulateTask): SimulateTaskResult {
  return runScenario(task.scenario, () => performance.now(), task);
}
