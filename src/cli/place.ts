import { readFileSync } from 'node:fs';
import { currentFromManifests, fromPlacement } from '../deploy/index.js';
import {
  TraceError,
  parseTrace,
  placementRequestSchema,
  type PlacementResponse,
} from '../placement/index.js';
import { InputError, fieldIssues } from '../input/errors.js';
import { ServiceCore } from '../service/core.js';
import { openDatabase } from '../storage/db.js';
import { EMIT_OPTIONS, emitOptions, emitted, EMIT_USAGE } from './emit.js';
import { parseOptions, UsageError } from './options.js';

const USAGE = `usage: loraplan place --file P.json [--json] [--url http://host:8080]
       loraplan place --trace requests.csv --profile P (--rank R | --ranks ranks.csv)
                      [--budget N] [--objective paper|stable] [--current gpus.json] [--json]
       [--current-from manifests.yaml] ${EMIT_USAGE}

P.json: { profile, catalog: [{ id, rate, rank }], requestLengths?, starvationThreshold?,
objective?, slo?, gpuBudget?, current? } (as POST /v1/placement).
requests.csv: one request per line, timestamp,adapter_id[,prompt_tokens,output_tokens]
(timestamps in seconds or ISO 8601; a header line is allowed). Rates are requests over the log's
span; lengths, when every line has them, become the workload's length distribution. The log has
no ranks: --rank gives one to every adapter, --ranks a CSV of adapter_id,rank.
--current: the placement running now (a previous answer's "gpus", or [{ adapters: [ids] }]);
--current-from: the same read from manifests loraplan emitted (any --emit target but vllm).
--emit: print the placement as manifests for that target instead of the table (docs/deploy.md).
Exit 0 when every adapter is placed, 1 when some are unplaced, 2 on an error.`;

function ranksFrom(path: string): Map<string, number> {
  const ranks = new Map<string, number>();
  readFileSync(path, 'utf8')
    .split(/\r?\n/)
    .forEach((line, i) => {
      const [id, rank] = line.split(',').map((f) => f.trim());
      if (!id || id === 'adapter_id') return;
      const r = Number(rank);
      if (!Number.isInteger(r) || r <= 0)
        throw new UsageError(`${path} line ${i + 1}: rank "${rank}" is not a positive integer`);
      ranks.set(id, r);
    });
  return ranks;
}

/** A request body built from a request log, with the line each catalog entry comes from. */
interface TraceBody {
  body: unknown;
  lines: number[];
}

function bodyFromTrace(values: Record<string, string | boolean | undefined>): TraceBody {
  const profile = values.profile;
  if (typeof profile !== 'string') throw new UsageError(`--trace needs --profile\n${USAGE}`);
  const fixed = typeof values.rank === 'string' ? Number(values.rank) : undefined;
  if (fixed !== undefined && !(Number.isInteger(fixed) && fixed > 0))
    throw new UsageError(`--rank must be a positive integer, got "${String(values.rank)}"`);
  const table = typeof values.ranks === 'string' ? ranksFrom(values.ranks) : undefined;
  if (fixed === undefined && !table)
    throw new UsageError(`--trace needs --rank or --ranks\n${USAGE}`);
  const trace = parseTrace(readFileSync(values.trace as string, 'utf8'), (id) => {
    const r = table?.get(id) ?? fixed;
    if (r === undefined)
      throw new UsageError(`adapter "${id}" has no rank in ${String(values.ranks)}`);
    return r;
  });
  const body = {
    profile,
    catalog: trace.catalog,
    ...(trace.requestLengths ? { requestLengths: trace.requestLengths } : {}),
    ...(typeof values.objective === 'string' ? { objective: values.objective } : {}),
    ...(typeof values.budget === 'string' ? { gpuBudget: Number(values.budget) } : {}),
    ...(typeof values.current === 'string'
      ? { current: JSON.parse(readFileSync(values.current, 'utf8')) as unknown }
      : {}),
  };
  return { body, lines: trace.lines };
}

/**
 * The request checked here, whichever way it is sent: a catalog entry built from a request log
 * that the schema refuses is named by its line in the log, whatever the field.
 */
function checked(body: unknown, lines: number[] | undefined) {
  const parsed = placementRequestSchema.safeParse(body);
  if (parsed.success) return parsed.data;
  const issues = fieldIssues(parsed.error);
  if (lines)
    for (const issue of issues) {
      const entry = /^catalog\[(\d+)\]\.?(.*)$/.exec(issue.field);
      if (entry) {
        const field = entry[2] === 'id' ? 'adapter id' : entry[2] || 'entry';
        throw new TraceError(lines[Number(entry[1])]!, `${field}: ${issue.message}`);
      }
    }
  throw new InputError(issues);
}

function table(r: PlacementResponse): string {
  const lines = [
    `${r.totals.gpus} GPUs for ${r.totals.placedAdapters} of ${r.totals.adapters} adapters (lower bound ${r.lowerBound.gpus}, ratio ${r.lowerBound.ratio.toFixed(2)}); ${Math.round(r.totals.throughputTokensPerSecond)} of ${Math.round(r.totals.offeredTokensPerSecond)} tok/s`,
    'gpu      adapters  flags                                                    offered  p99 TTFT  headroom',
    ...r.gpus.map(
      (g) =>
        `${g.id.padEnd(8)} ${String(g.adapters.length).padStart(8)}  ${g.vllmArgs.slice(1).join(' ').padEnd(55)} ${String(Math.round(g.offeredTokensPerSecond)).padStart(8)}  ${(g.ttftP99Ms / 1000).toFixed(1).padStart(7)} s  +${g.headroom.percentAtLeast}%`,
    ),
  ];
  if (r.moves)
    lines.push(
      `moves: ${r.moves.moved} adapters moved, ${r.moves.added} added, ${r.moves.removed} removed (a fresh placement uses ${r.moves.freshGpus} GPUs)`,
    );
  for (const u of r.unplaced.slice(0, 20)) lines.push(`unplaced ${u.id}: ${u.reason}`);
  for (const w of r.warnings) lines.push(`warning: ${w}`);
  return lines.join('\n');
}

export async function placeCommand(argv: string[]): Promise<number> {
  const { values } = parseOptions(argv, {
    file: { type: 'string' },
    trace: { type: 'string' },
    profile: { type: 'string' },
    rank: { type: 'string' },
    ranks: { type: 'string' },
    budget: { type: 'string' },
    objective: { type: 'string' },
    current: { type: 'string' },
    url: { type: 'string' },
    json: { type: 'boolean' },
    'current-from': { type: 'string' },
    ...EMIT_OPTIONS,
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (!values.file === !values.trace) throw new UsageError(`give --file or --trace\n${USAGE}`);
  const fromTrace = values.file ? undefined : bodyFromTrace(values);
  const body = fromTrace
    ? fromTrace.body
    : (JSON.parse(readFileSync(values.file as string, 'utf8')) as unknown);
  const deployOptions = values.emit ? await emitOptions(values) : undefined;
  if (values['current-from'])
    (body as { current?: unknown }).current = currentFromManifests(
      readFileSync(values['current-from'], 'utf8'),
    );
  const request = checked(body, fromTrace?.lines);
  let response: PlacementResponse;
  if (values.url) {
    const res = await fetch(new URL('/v1/placement', values.url), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(request),
    });
    const json = (await res.json()) as PlacementResponse & { detail?: string };
    if (!res.ok) throw new UsageError(`${res.status}: ${json.detail ?? res.statusText}`);
    response = json;
  } else {
    const core = new ServiceCore({ db: openDatabase(':memory:'), placementTimeoutMs: 3_600_000 });
    try {
      response = (await core.place(request)).response;
    } finally {
      await core.close();
    }
  }
  if (deployOptions) process.stdout.write(await emitted(fromPlacement(response), deployOptions));
  else process.stdout.write(values.json ? `${JSON.stringify(response)}\n` : `${table(response)}\n`);
  return response.unplaced.length > 0 ? 1 : 0;
}
