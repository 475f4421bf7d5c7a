import { median } from '../stats/index.js';
import type { RequestRecord } from './load.js';

/** One engine step as a closed-loop load's token times reveal it. */
export interface ObservedStep {
  /** From the previous step's tokens to this one's: the step's duration. */
  ms: number;
  /** Requests that emitted a token after their first (decode sequences). */
  decodeSeqs: number;
  /** Requests whose first token this step emitted, and their prompt tokens. */
  prefillSeqs: number;
  prefillTokens: number;
  /** Requests sent before the step began and not yet in it: the scheduler's waiting queue. */
  waiting: number;
  /** KV blocks the step's requests hold, in tokens (vLLM allocates whole blocks). */
  kvTokens: number;
  /** Distinct adapters among the step's requests, and their names in order. */
  adapters: number;
  adapterNames: string[];
}

interface Emission {
  at: number;
  request: number;
  /** 1 for the first token. */
  index: number;
}

/**
 * The steps of a closed-loop load, read from its streamed token times: vLLM emits one token per
 * running request at the end of every step, so the tokens of one step arrive together and the
 * steps are separated by their duration. Tokens closer than a third of the median inter-token
 * gap are one step's (with no gaps at all, a third of the median of the larger half of spacings).
 * A step of first tokens only may follow an idle engine, and then began at its first request's
 * send (the first step of all among them); a step with decodes began when the previous ended.
 * Open (Poisson) loads read the same way.
 */
export function observedSteps(
  records: readonly RequestRecord[],
  blockSize: number,
): ObservedStep[] {
  const ok = records.filter((r) => r.ok && r.ttftMs !== null);
  const emissions: Emission[] = [];
  const gaps: number[] = [];
  ok.forEach((r, request) => {
    let at = r.sentS * 1000 + r.ttftMs!;
    emissions.push({ at, request, index: 1 });
    r.itlMs.forEach((gap, i) => {
      at += gap;
      gaps.push(gap);
      emissions.push({ at, request, index: i + 2 });
    });
  });
  if (emissions.length < 2) return [];
  emissions.sort((a, b) => a.at - b.at || a.request - b.request);
  const spacings = emissions.slice(1).map((e, i) => e.at - emissions[i]!.at);
  const threshold =
    gaps.length > 0
      ? median(gaps) / 3
      : median([...spacings].sort((a, b) => a - b).slice(spacings.length >> 1)) / 3;
  const sent = ok.map((r) => r.sentS * 1000);
  const firstAt = ok.map((r) => r.sentS * 1000 + r.ttftMs!);
  const steps: ObservedStep[] = [];
  let start = 0;
  let previousAt: number | undefined;
  const close = (end: number) => {
    const members = emissions.slice(start, end);
    const at = members[0]!.at;
    let decodeSeqs = 0;
    let prefillSeqs = 0;
    let prefillTokens = 0;
    let kvTokens = 0;
    const adapters = new Set<string>();
    for (const e of members) {
      const r = ok[e.request]!;
      adapters.add(r.adapter);
      if (e.index === 1) {
        prefillSeqs++;
        prefillTokens += r.promptTokens;
      } else decodeSeqs++;
      // A prefill allocates its prompt's blocks; a decode those of prompt + tokens so far.
      const tokens = r.promptTokens + (e.index === 1 ? 0 : e.index - 1);
      kvTokens += Math.ceil(tokens / blockSize) * blockSize;
    }
    // A step of first tokens only may follow an idle engine: then it began at its first send.
    const firstSend = Math.min(...members.map((e) => sent[e.request]!));
    const began = decodeSeqs > 0 ? previousAt : Math.max(previousAt ?? -Infinity, firstSend);
    if (began !== undefined) {
      let waiting = 0;
      for (let r = 0; r < ok.length; r++)
        if (sent[r]! <= began + 1e-6 && firstAt[r]! > at) waiting++;
      steps.push({
        ms: at - began,
        decodeSeqs,
        prefillSeqs,
        prefillTokens,
        waiting,
        kvTokens,
        adapters: adapters.size,
        adapterNames: [...adapters].sort(),
      });
    }
    previousAt = at;
    start = end;
  };
  for (let i = 1; i < emissions.length; i++)
    if (emissions[i]!.at - emissions[i - 1]!.at > threshold) close(i);
  close(emissions.length);
  return steps;
}
