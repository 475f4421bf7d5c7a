// Piscina worker: runs one scenario off the main thread.
import type { Scenario, SimulationResult } from '../twin/index.js';
import { runScenario } from './scenario-runner.js';

export interface SimulateTask {
  scenario: Scenario;
  starvationThreshold?: number;
}

export default function run(task: SimulateTask): SimulationResult {
  return runScenario(task.scenario, () => performance.now(), task.starvationThreshold);
}
