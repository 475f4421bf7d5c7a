import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { z } from 'zod';
import type { KitRun } from './kit-fit.js';
import type { RequestRecord } from './load.js';
import { MeasureInputError } from './npy.js';
import { planSchema, type MeasurePlan } from './plan.js';

const recordSchema = z.object({
  adapter: z.string(),
  sentS: z.number(),
  promptTokens: z.number().int().min(0),
  outputTokens: z.number().int().min(0),
  ttftMs: z.number().nullable(),
  itlMs: z.array(z.number()),
  ok: z.boolean(),
  error: z.string().optional(),
});

const OUTCOMES = ['ok', 'startup-failed', 'startup-timeout', 'load-failed'] as const;

/** vLLM's start-up line (vllm/v1/core/kv_cache_utils.py, 0.8.5): "GPU KV cache size: 1,234 tokens". */
const KV_LINE = /GPU KV cache size: ([\d,]+) tokens/;

function readJson(file: string): unknown {
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    if (e instanceof SyntaxError)
      throw new MeasureInputError(file, `not valid JSON (${e.message})`);
    throw e;
  }
}

/** The plan a runs folder belongs to: run.sh writes runs/ beside plan.json. */
export function kitPlanOf(root: string): string | undefined {
  return [join(root, 'plan.json'), join(dirname(root), 'plan.json')].find((f) => existsSync(f));
}

export function readRequests(file: string): RequestRecord[] {
  const records: RequestRecord[] = [];
  readFileSync(file, 'utf8')
    .split('\n')
    .forEach((line, i) => {
      if (line.trim() === '') return;
      let raw: unknown;
      try {
        raw = JSON.parse(line);
      } catch (e) {
        throw new MeasureInputError(file, `not a JSON line (${(e as Error).message})`, i + 1);
      }
      const parsed = recordSchema.safeParse(raw);
      if (!parsed.success) {
        const issue = parsed.error.issues[0]!;
        throw new MeasureInputError(
          file,
          `${issue.path.join('.') || 'record'}: ${issue.message}`,
          i + 1,
        );
      }
      const { error, ...rest } = parsed.data;
      records.push(error === undefined ? rest : { ...rest, error });
    });
  return records;
}

/**
 * What run.sh recorded for each experiment of its plan: runs/ID/outcome, server.log (the KV
 * cache line) and requests.jsonl. An experiment not run yet is 'missing'.
 */
export function readKitRuns(root: string): { plan: MeasurePlan; runs: KitRun[] } | undefined {
  const planFile = kitPlanOf(root);
  if (!planFile) return undefined;
  const parsed = planSchema.safeParse(readJson(planFile));
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new MeasureInputError(planFile, `${issue.path.join('.')}: ${issue.message}`);
  }
  const plan = parsed.data;
  const runsDir = existsSync(join(root, 'runs')) ? join(root, 'runs') : root;
  const runs = plan.experiments.map((experiment): KitRun => {
    const dir = join(runsDir, experiment.id);
    const outcomeFile = join(dir, 'outcome');
    if (!existsSync(outcomeFile)) return { experiment, outcome: 'missing', records: [] };
    const written = readFileSync(outcomeFile, 'utf8').trim();
    const outcome = OUTCOMES.find((o) => o === written);
    if (!outcome)
      throw new MeasureInputError(
        outcomeFile,
        `unknown outcome "${written}" (run.sh writes ${OUTCOMES.join(', ')})`,
        1,
      );
    const run: KitRun = { experiment, outcome, records: [] };
    const log = join(dir, 'server.log');
    if (existsSync(log)) {
      const kv = KV_LINE.exec(readFileSync(log, 'utf8'));
      if (kv) run.kvCacheTokens = Number(kv[1]!.replaceAll(',', ''));
    }
    const requests = join(dir, 'requests.jsonl');
    if (existsSync(requests)) run.records = readRequests(requests);
    return run;
  });
  return { plan, runs };
}
