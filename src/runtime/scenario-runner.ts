import { loadProfile } from '../profiles/store.js';
import {
  scenarioSchema,
  simulate,
  type Profile,
  type Scenario,
  type SimulateOptions,
  type SimulationResult,
  type StepStats,
} from '../twin/index.js';
import { InputError, fieldIssues } from '../input/errors.js';

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
  options: Pick<SimulateOptions, 'starvationThreshold' | 'includeStepStats'> & {
    profile?: Profile;
  } = {},
): SimulationResult & { stepStats?: StepStats } {
  const profile = options.profile ?? loadProfile(scenario.profile);
  const start = now();
  const result = simulate(scenario, profile, options);
  return { ...result, wallTimeMs: now() - start };
}
