import { loadProfile } from '../profiles/store.js';
import { scenarioSchema, simulate, type Scenario, type SimulationResult } from '../twin/index.js';
import { InputError, fieldIssues } from './errors.js';

/** Parses and checks a scenario as a client sent it; throws InputError naming each bad field. */
export function parseScenario(input: unknown): Scenario {
  const parsed = scenarioSchema.safeParse(input);
  if (!parsed.success) throw new InputError(fieldIssues(parsed.error));
  return parsed.data;
}

/** Runs one parsed scenario; `now` is the clock used for wallTimeMs (injected for determinism). */
export function runScenario(
  scenario: Scenario,
  now: () => number = () => performance.now(),
  starvationThreshold?: number,
): SimulationResult {
  const profile = loadProfile(scenario.profile);
  const start = now();
  const result = simulate(scenario, profile, { starvationThreshold });
  return { ...result, wallTimeMs: now() - start };
}
