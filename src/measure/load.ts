import { exponential, seededStream } from '../twin/random.js';
import type { Experiment } from './plan.js';

/** One request as the twin defines its figures: TTFT, the gaps between tokens, tokens, outcome. */
export interface RequestRecord {
  adapter: string;
  /** Seconds after the load started that the request was sent. */
  sentS: number;
  promptTokens: number;
  outputTokens: number;
  ttftMs: number | null;
  itlMs: number[];
  ok: boolean;
  error?: string;
}

export interface LoadOptions {
  baseUrl: string;
  fetch?: typeof fetch;
  /** Milliseconds on a monotonic clock (injected: tests pass their own). */
  now?: () => number;
  /** Waits this many milliseconds on that clock (injected with it). */
  sleep?: (ms: number) => Promise<void>;
  seed?: number;
  /** Cut a Poisson load to this many seconds (tests). */
  durationSeconds?: number;
}

/** The model the server serves itself under (the base model for experiments without adapters). */
async function baseModel(
  options: Required<Pick<LoadOptions, 'baseUrl' | 'fetch'>>,
): Promise<string> {
  const res = await options.fetch(`${options.baseUrl}/v1/models`);
  if (!res.ok) throw new Error(`${options.baseUrl}/v1/models answered ${res.status}`);
  const body = (await res.json()) as { data?: Array<{ id: string; parent?: string | null }> };
  const base = body.data?.find((m) => !m.parent) ?? body.data?.[0];
  if (!base) throw new Error(`${options.baseUrl}/v1/models lists no model`);
  return base.id;
}

/**
 * One streamed completion. The prompt is token ids, so its length is exact whatever the
 * tokenizer; ignore_eos (a vLLM extension) makes the output exactly max_tokens long.
 */
async function oneRequest(
  model: string,
  promptTokens: number,
  outputTokens: number,
  sentS: number,
  options: Required<Pick<LoadOptions, 'baseUrl' | 'fetch' | 'now'>>,
): Promise<RequestRecord> {
  const record: RequestRecord = {
    adapter: model,
    sentS,
    promptTokens,
    outputTokens: 0,
    ttftMs: null,
    itlMs: [],
    ok: false,
  };
  const start = options.now();
  try {
    const res = await options.fetch(`${options.baseUrl}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        model,
        prompt: Array.from({ length: promptTokens }, (_, i) => 1000 + (i % 1000)),
        max_tokens: outputTokens,
        ignore_eos: true,
        temperature: 0,
        stream: true,
        stream_options: { include_usage: true },
      }),
    });
    if (!res.ok || !res.body) {
      record.error = `HTTP ${res.status}`;
      return record;
    }
    const decoder = new TextDecoder();
    let buffered = '';
    let last = start;
    let chunks = 0;
    let usageTokens: number | undefined;
    for await (const part of res.body as unknown as AsyncIterable<Uint8Array>) {
      buffered += decoder.decode(part, { stream: true });
      let newline: number;
      while ((newline = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, newline).trim();
        buffered = buffered.slice(newline + 1);
        if (!line.startsWith('data:')) continue;
        const data = line.slice(5).trim();
        if (data === '[DONE]') continue;
        const event = JSON.parse(data) as {
          choices?: Array<{ text?: string }>;
          usage?: { completion_tokens?: number } | null;
        };
        if (event.usage?.completion_tokens !== undefined)
          usageTokens = event.usage.completion_tokens;
        if (!event.choices?.length || !event.choices[0]!.text) continue;
        const t = options.now();
        if (record.ttftMs === null) record.ttftMs = t - start;
        else record.itlMs.push(t - last);
        last = t;
        chunks++;
      }
    }
    record.outputTokens = usageTokens ?? chunks;
    record.ok = record.outputTokens === outputTokens;
    if (!record.ok) record.error = `${record.outputTokens} of ${outputTokens} tokens`;
  } catch (e) {
    record.error = (e as Error).message;
  }
  return record;
}

/**
 * Drives one experiment's load against an OpenAI-compatible vLLM server: Poisson arrivals per
 * adapter at its rate (seeded), or a fixed number in flight.
 */
export async function runLoad(
  experiment: Experiment,
  options: LoadOptions,
): Promise<RequestRecord[]> {
  const o = {
    baseUrl: options.baseUrl.replace(/\/$/, ''),
    fetch: options.fetch ?? fetch,
    now: options.now ?? (() => performance.now()),
    sleep:
      options.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))),
  };
  const load = experiment.load;
  if (load.kind === 'startup') return [];
  const base = experiment.adapters.length === 0 ? await baseModel(o) : undefined;
  const models = experiment.adapters.length > 0 ? experiment.adapters.map((a) => a.name) : [base!];
  const t0 = o.now();
  if (load.kind === 'closed') {
    const records: RequestRecord[] = [];
    let issued = 0;
    const worker = async () => {
      while (issued < load.requests) {
        const model = models[issued % models.length]!;
        issued++;
        records.push(
          await oneRequest(model, load.promptTokens, load.outputTokens, (o.now() - t0) / 1000, o),
        );
      }
    };
    await Promise.all(Array.from({ length: Math.min(load.concurrency, load.requests) }, worker));
    return records;
  }
  const duration = options.durationSeconds ?? load.durationSeconds;
  const sends: Array<{ model: string; at: number }> = [];
  models.forEach((model, i) => {
    const rate = load.ratesPerAdapter[i % load.ratesPerAdapter.length]!;
    const source = seededStream(options.seed ?? 1, i);
    for (let t = exponential(source, rate); t < duration; t += exponential(source, rate))
      sends.push({ model, at: t });
  });
  sends.sort((a, b) => a.at - b.at || a.model.localeCompare(b.model));
  const pending = sends.map((s) =>
    o
      .sleep(Math.max(0, s.at * 1000 - (o.now() - t0)))
      .then(() => oneRequest(s.model, load.promptTokens, load.outputTokens, s.at, o)),
  );
  return Promise.all(pending);
}
