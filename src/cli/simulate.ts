import { createReadStream, readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { SingleBar } from 'cli-progress';
import { SimulationPool } from '../runtime/pool.js';
import { parseScenario, runScenario } from '../runtime/scenario-runner.js';
import { InputError } from '../input/errors.js';
import type { Scenario, SimulationResult } from '../twin/index.js';
import { loadProfile } from '../profiles/store.js';
import { intOption, parseOptions, UsageError } from './options.js';

const USAGE = `usage: loraplan simulate --scenario FILE
       loraplan simulate --batch FILE.jsonl [--threads N]

--scenario: one scenario JSON; prints its result JSON.
--batch: one scenario per line; prints one result per line in the same order, running scenarios
on worker threads (a progress bar on stderr when it is a terminal). A bad line stops the batch
before anything runs, naming the line and the field.`;

export async function simulateCommand(argv: string[]): Promise<number> {
  const { values } = parseOptions(argv, {
    scenario: { type: 'string' },
    batch: { type: 'string' },
    threads: { type: 'string' },
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (Boolean(values.scenario) === Boolean(values.batch)) {
    throw new UsageError(`give exactly one of --scenario or --batch\n${USAGE}`);
  }
  if (values.scenario) {
    const scenario = parseScenario(JSON.parse(readFileSync(values.scenario, 'utf8')));
    process.stdout.write(`${JSON.stringify(runScenario(scenario))}\n`);
    return 0;
  }
  const scenarios = await readBatch(values.batch!);
  const threads = intOption(values.threads, '--threads');
  const results = await runBatch(scenarios, threads);
  for (const r of results) process.stdout.write(`${JSON.stringify(r)}\n`);
  return 0;
}

async function readBatch(path: string): Promise<Scenario[]> {
  const scenarios: Scenario[] = [];
  const lines = createInterface({ input: createReadStream(path), crlfDelay: Infinity });
  let lineNo = 0;
  for await (const line of lines) {
    lineNo++;
    if (line.trim() === '') continue;
    let json: unknown;
    try {
      json = JSON.parse(line);
    } catch (e) {
      throw new UsageError(`line ${lineNo}: not valid JSON (${(e as Error).message})`);
    }
    try {
      const s = parseScenario(json);
      loadProfile(s.profile);
      scenarios.push(s);
    } catch (e) {
      if (e instanceof InputError) throw new UsageError(`line ${lineNo}: ${e.message}`);
      throw new UsageError(`line ${lineNo}: ${(e as Error).message}`);
    }
  }
  return scenarios;
}

async function runBatch(scenarios: Scenario[], threads?: number): Promise<SimulationResult[]> {
  const pool = new SimulationPool(threads === undefined ? {} : { threads });
  const bar = process.stderr.isTTY
    ? new SingleBar({
        format: 'simulate [{bar}] {value}/{total} scenarios | ETA {eta_formatted}',
        stream: process.stderr,
      })
    : null;
  bar?.start(scenarios.length, 0);
  try {
    return await Promise.all(
      scenarios.map(async (scenario) => {
        const r = await pool.run({ scenario });
        bar?.increment();
        return r;
      }),
    );
  } finally {
    bar?.stop();
    await pool.close();
  }
}
