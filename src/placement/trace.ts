import { LIMITS } from '../twin/index.js';
import type { RequestLengthSpec } from '../twin/lengths.js';
import type { CatalogAdapter } from './gpu.js';

/** A request log line that cannot be read; `line` is 1-based, as editors number lines. */
export class TraceError extends Error {
  constructor(
    readonly line: number,
    message: string,
  ) {
    super(`line ${line}: ${message}`);
  }
}

export interface TraceCatalog {
  catalog: CatalogAdapter[];
  /** The 1-based line each catalog entry's adapter first appears on, for naming errors. */
  lines: number[];
  /** The log's own prompt and output lengths, when every line carries them. */
  requestLengths?: RequestLengthSpec;
  requests: number;
  spanSeconds: number;
}

const timestampOf = (field: string): number | undefined => {
  if (/^-?\d+(\.\d+)?([eE][-+]?\d+)?$/.test(field)) return Number(field);
  const ms = Date.parse(field);
  return Number.isFinite(ms) ? ms / 1000 : undefined;
};

/**
 * A catalog from a request log: one request per line, `timestamp,adapter_id` with optional
 * `,prompt_tokens,output_tokens`; timestamps in seconds or ISO 8601; an optional header line.
 * Each adapter's rate is its requests over the log's span; ranks come from `rankOf` (the log has
 * none). When every line has lengths, they become an empirical length distribution (evenly
 * thinned to the twin's sample limit).
 */
export function parseTrace(text: string, rankOf: (id: string) => number): TraceCatalog {
  const counts = new Map<string, number>();
  const firstLine = new Map<string, number>();
  const samples: Array<[number, number]> = [];
  let withLengths = 0;
  let first = Infinity;
  let last = -Infinity;
  let requests = 0;
  const lines = text.split(/\r?\n/);
  lines.forEach((raw, index) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const fields = line.split(',').map((f) => f.trim());
    const ts = timestampOf(fields[0] ?? '');
    if (ts === undefined) {
      if (requests === 0 && index === lines.findIndex((l) => l.trim() !== '')) return; // header
      throw new TraceError(index + 1, `"${fields[0]}" is not a timestamp (seconds or ISO 8601)`);
    }
    const id = fields[1];
    if (!id) throw new TraceError(index + 1, 'no adapter id (expected timestamp,adapter_id)');
    if (fields.length >= 4) {
      const prompt = Number(fields[2]);
      const output = Number(fields[3]);
      if (![prompt, output].every((v) => Number.isInteger(v) && v > 0))
        throw new TraceError(
          index + 1,
          `prompt and output tokens must be positive integers, got "${fields[2]}", "${fields[3]}"`,
        );
      samples.push([prompt, output]);
      withLengths++;
    } else if (fields.length === 3) {
      throw new TraceError(index + 1, 'give both prompt and output tokens, or neither');
    }
    counts.set(id, (counts.get(id) ?? 0) + 1);
    if (!firstLine.has(id)) firstLine.set(id, index + 1);
    first = Math.min(first, ts);
    last = Math.max(last, ts);
    requests++;
  });
  if (requests === 0) throw new TraceError(1, 'the log has no requests');
  const spanSeconds = last - first;
  if (!(spanSeconds > 0))
    throw new TraceError(1, 'every request has the same timestamp: no rate can be derived');
  const catalog = [...counts].map(([id, n]) => ({ id, rate: n / spanSeconds, rank: rankOf(id) }));
  let requestLengths: RequestLengthSpec | undefined;
  if (withLengths === requests) {
    const step = Math.max(1, samples.length / LIMITS.maxEmpiricalSamples);
    const thinned: Array<[number, number]> = [];
    for (let i = 0; i < samples.length; i += step) thinned.push(samples[Math.floor(i)]!);
    requestLengths = { kind: 'empirical', samples: thinned };
  }
  return {
    catalog,
    lines: catalog.map((a) => firstLine.get(a.id)!),
    ...(requestLengths ? { requestLengths } : {}),
    requests,
    spanSeconds,
  };
}
