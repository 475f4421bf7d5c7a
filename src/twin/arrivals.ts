// The requests one simulation serves: every adapter's Poisson arrivals over the window, with
// their lengths, drawn before the engine runs (src/twin/engine.ts) so its step loop only reads them.
import type { RequestLengthSampler } from './lengths.js';
import { exponential, type UniformSource } from './random.js';

/** What the arrivals are drawn from: rates per adapter, the window and the seeded sources. */
export interface ArrivalInput {
  adapterRates: Float64Array;
  lengths: RequestLengthSampler;
  arrivals: UniformSource;
  durationSeconds: number;
}

/** `to`, holding `from`'s values at its start (a column grown in place of `from`). */
function copiedInto<T extends Float64Array | Int32Array>(to: T, from: T): T {
  to.set(from);
  return to;
}

/** Requests as a struct of arrays: one index per arrival, in arrival order. */
export class RequestTable {
  arrival: Float64Array;
  adapter: Int32Array;
  prompt: Int32Array;
  output: Int32Array;
  length = 0;
  constructor(capacity: number) {
    this.arrival = new Float64Array(capacity);
    this.adapter = new Int32Array(capacity);
    this.prompt = new Int32Array(capacity);
    this.output = new Int32Array(capacity);
  }
  push(arrival: number, adapter: number, prompt: number, output: number): void {
    if (this.length === this.arrival.length) this.grow();
    const i = this.length++;
    this.arrival[i] = arrival;
    this.adapter[i] = adapter;
    this.prompt[i] = prompt;
    this.output[i] = output;
  }
  private grow(): void {
    const n = this.arrival.length * 2;
    this.arrival = copiedInto(new Float64Array(n), this.arrival);
    this.adapter = copiedInto(new Int32Array(n), this.adapter);
    this.prompt = copiedInto(new Int32Array(n), this.prompt);
    this.output = copiedInto(new Int32Array(n), this.output);
  }
}

/**
 * Walker's alias table: draws an adapter with probability proportional to its rate in O(1).
 */
function aliasTable(weights: Float64Array): { prob: Float64Array; alias: Int32Array } {
  const n = weights.length;
  const total = weights.reduce((s, w) => s + w, 0);
  const prob = new Float64Array(n);
  const alias = new Int32Array(n);
  const scaled = Array.from(weights, (w) => (w * n) / total);
  const small: number[] = [];
  const large: number[] = [];
  scaled.forEach((w, i) => (w < 1 ? small : large).push(i));
  while (small.length > 0 && large.length > 0) {
    const s = small.pop()!;
    const l = large[large.length - 1]!;
    prob[s] = scaled[s]!;
    alias[s] = l;
    scaled[l] = scaled[l]! + scaled[s]! - 1;
    if (scaled[l]! < 1) {
      large.pop();
      small.push(l);
    }
  }
  for (const i of [...small, ...large]) prob[i] = 1;
  return { prob, alias };
}

/**
 * Poisson arrivals of every adapter over the window. Independent Poisson processes superpose into
 * one Poisson process of the summed rate whose arrivals belong to adapter a with probability
 * rate_a / total, which is how they are drawn: two uniforms per request, no per-adapter heap.
 */
export function generateArrivals(input: ArrivalInput): RequestTable {
  const { adapterRates: rates, durationSeconds, arrivals, lengths } = input;
  const n = rates.length;
  let total = 0;
  for (let a = 0; a < n; a++) total += rates[a]!;
  const table = new RequestTable(Math.ceil(total * durationSeconds * 1.1) + 64);
  if (total <= 0) return table;
  const { prob, alias } = aliasTable(rates);
  const len = { prompt: 0, output: 0 };
  for (
    let t = exponential(arrivals, total);
    t < durationSeconds;
    t += exponential(arrivals, total)
  ) {
    const u = arrivals.next() * n;
    const column = Math.floor(u);
    const a = u - column < prob[column]! ? column : alias[column]!;
    lengths.sample(len);
    table.push(t, a, len.prompt, len.output);
  }
  return table;
}
