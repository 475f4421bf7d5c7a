import { readFileSync } from 'node:fs';
import { checkRequestSchema, type CheckResponse } from '../service/check-schema.js';
import { ServiceCore } from '../service/core.js';
import { openDatabase } from '../storage/db.js';
import { InputError, fieldIssues } from '../input/errors.js';
import { parseOptions, UsageError } from './options.js';

const USAGE = `usage: loraplan check --file C.json [--url http://host:8080] [--json]

C.json: { profile, workload, config, starvationThreshold?, slo? } (as POST /v1/check).
Runs locally, or against a server with --url. Exit 0 for ok or suboptimal, 1 for starving,
infeasible or slo-violated, 2 for an error.`;

export async function checkCommand(argv: string[]): Promise<number> {
  const { values } = parseOptions(argv, {
    file: { type: 'string' },
    url: { type: 'string' },
    json: { type: 'boolean' },
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (!values.file) throw new UsageError(`--file is required\n${USAGE}`);
  const body = JSON.parse(readFileSync(values.file, 'utf8')) as unknown;
  let response: CheckResponse;
  if (values.url) {
    const res = await fetch(new URL('/v1/check', values.url), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    const json = (await res.json()) as CheckResponse & { detail?: string };
    if (!res.ok) throw new UsageError(`${res.status}: ${json.detail ?? res.statusText}`);
    response = json;
  } else {
    const parsed = checkRequestSchema.safeParse(body);
    if (!parsed.success) throw new InputError(fieldIssues(parsed.error));
    const core = new ServiceCore({ db: openDatabase(':memory:') });
    try {
      response = (await core.check(parsed.data)).response;
    } finally {
      await core.close();
    }
  }
  process.stdout.write(
    values.json ? `${JSON.stringify(response)}\n` : `${response.verdict}: ${response.reason}\n`,
  );
  return ['starving', 'infeasible', 'slo-violated'].includes(response.verdict) ? 1 : 0;
}
