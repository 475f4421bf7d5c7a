import { execFileSync, spawnSync } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { derive, readDeriveCatalog } from '../src/derive/index.js';
import { runLoad } from '../src/measure/load.js';
import { measurePlan, TERMS, type Experiment } from '../src/measure/plan.js';
import { runScript } from '../src/measure/runsh.js';
import { scenarioSchema } from '../src/twin/scenario.js';
import { simulate } from '../src/twin/simulate.js';
import { loadProfile, PACKAGE_ROOT } from '../src/profiles/store.js';
import { scratchDir } from './scratch.js';

const measured = [
  loadProfile('h100-64gb/llama-3.1-8b-instruct'),
  loadProfile('h100-64gb/qwen-2.5-7b-instruct'),
];
const a100 = derive(
  { gpu: 'a100-80gb-sxm', model: 'qwen3-8b', flags: { maxModelLen: 8192 } },
  readDeriveCatalog(join(PACKAGE_ROOT, 'models')),
  measured,
);

describe('loraplan measure plan', () => {
  it('covers every profile term within an hour, and keeps to the budget', () => {
    const plan = measurePlan(a100, { ranks: [8, 16, 32], budgetMinutes: 60, maxModelLen: 8192 });
    expect(plan.plannedMinutes).toBeLessThanOrEqual(60);
    expect(new Set(plan.experiments.flatMap((e) => e.identifies))).toEqual(new Set(TERMS));
    expect(plan.uncovered).toEqual([]);
    // Every server pins the flags whose defaults changed after vLLM 0.8.5.
    for (const e of plan.experiments)
      expect(e.serverArgs).toEqual(
        expect.arrayContaining(['--max-num-batched-tokens=2048', '--no-enable-prefix-caching']),
      );
  });

  it('decodes at long context as well, so per-sequence and per-KV-token step costs come apart', () => {
    const plan = measurePlan(a100, { ranks: [8, 16, 32], budgetMinutes: 60, maxModelLen: 8192 });
    const closed = (id: string) => {
      const e = plan.experiments.find((x) => x.id === id)!;
      if (e.load.kind !== 'closed') throw new Error(`${id} is not a closed load`);
      return e.load;
    };
    const short = closed('decode-32');
    const long = closed('decode-long');
    expect(long.concurrency).toBe(short.concurrency);
    // Mean context per sequence in flight: the prompt and half the output.
    const context = (l: typeof short) => l.promptTokens + l.outputTokens / 2;
    expect(context(long) / context(short)).toBeGreaterThan(4);
    // Each prompt is prefilled in one step of the pinned 2048-token budget.
    expect(long.promptTokens).toBeLessThanOrEqual(2048);
  });

  it("places its serving runs about the derived twin's starvation edge: below it they keep up, past it they starve", () => {
    const plan = measurePlan(a100, { ranks: [16], budgetMinutes: 90, maxModelLen: 8192 });
    const verdict = (id: string) => {
      const e = plan.experiments.find((x) => x.id === id)!;
      if (e.load.kind !== 'poisson') throw new Error(`${id} is not a Poisson load`);
      const flag = (n: string) =>
        Number(e.serverArgs.find((a) => a.startsWith(`--${n}=`))!.split('=')[1]);
      return simulate(
        scenarioSchema.parse({
          profile: a100.id,
          config: {
            maxLoras: flag('max-loras'),
            maxCpuLoras: flag('max-cpu-loras'),
            maxLoraRank: 16,
            maxNumBatchedTokens: 2048,
            maxNumSeqs: 512,
          },
          workload: {
            rates: [e.load.ratesPerAdapter[0]!],
            ranks: [16],
            requestLengths: { kind: 'fixed', input: 256, output: 256 },
          },
          durationSeconds: 600,
          seed: 1,
        }),
        a100,
      ).starving;
    };
    expect(verdict('serving-1')).toBe(false);
    expect(verdict('serving-2')).toBe(false);
    expect(verdict('serving-3')).toBe(true);
  });

  it('a plan too small to identify a term says which term stays at its derived value', () => {
    const plan = measurePlan(a100, { ranks: [16], budgetMinutes: 12, maxModelLen: 8192 });
    expect(plan.plannedMinutes).toBeLessThanOrEqual(12);
    const uncovered = plan.uncovered.map((u) => u.term);
    expect(uncovered.length).toBeGreaterThan(0);
    expect(uncovered).toContain('servingFit');
    expect(plan.uncovered[0]!.why).toMatch(/stays at the derived profile's value/);
  });

  it('run.sh passes shellcheck, and uses only vllm serve flags of the 0.8.5 parser', () => {
    const plan = measurePlan(a100, { ranks: [8, 16], budgetMinutes: 90, maxModelLen: 8192 });
    const script = runScript(plan);
    const dir = scratchDir('loraplan-plan-');
    const file = join(dir, 'run.sh');
    writeFileSync(file, script);
    const shellcheck = spawnSync('shellcheck', ['--version']);
    if (shellcheck.status === 0) execFileSync('shellcheck', [file]); // throws with its findings
    // vLLM 0.8.5: vllm/engine/arg_utils.py (EngineArgs) and entrypoints/openai/cli_args.py.
    const known = new Set([
      '--enable-lora',
      '--max-loras',
      '--max-cpu-loras',
      '--max-lora-rank',
      '--max-num-seqs',
      '--max-num-batched-tokens',
      '--no-enable-prefix-caching',
      '--gpu-memory-utilization',
      '--max-model-len',
      '--disable-log-requests',
      '--lora-modules',
      '--port',
    ]);
    const used = new Set(
      [...script.matchAll(/'(--[a-z-]+)(?:=[^']*)?'|(--lora-modules|--port)\b/g)].map(
        (m) => m[1] ?? m[2],
      ),
    );
    for (const flag of used) expect(known.has(flag!), flag).toBe(true);
    expect(readFileSync(file, 'utf8')).toContain(
      'if [ -f "$dir/done" ]; then echo "skip $id (done)"',
    );
  });
});

/**
 * A stand-in for vLLM's OpenAI server (a test fixture, never an engine): it streams each
 * completion's tokens with a known first-token delay and gap, and refuses one adapter.
 */
let server: Server;
let baseUrl = '';
const FIRST_MS = 30;
const GAP_MS = 8;
beforeAll(async () => {
  server = createServer((req, res) => {
    if (req.url === '/v1/models') {
      res.setHeader('content-type', 'application/json');
      return res.end(JSON.stringify({ data: [{ id: 'base-model', parent: null }] }));
    }
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      const r = JSON.parse(body) as { model: string; max_tokens: number; prompt: number[] };
      if (r.model === 'refused') {
        res.statusCode = 404;
        return res.end('{"error":"no such adapter"}');
      }
      res.setHeader('content-type', 'text/event-stream');
      let sent = 0;
      const send = () => {
        sent++;
        res.write(`data: ${JSON.stringify({ choices: [{ text: 'x' }] })}\n\n`);
        if (sent < r.max_tokens) setTimeout(send, GAP_MS);
        else {
          res.write(
            `data: ${JSON.stringify({ choices: [], usage: { prompt_tokens: r.prompt.length, completion_tokens: sent } })}\n\n`,
          );
          res.end('data: [DONE]\n\n');
        }
      };
      setTimeout(send, FIRST_MS);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

describe('loraplan measure run drives the load and records what the twin defines', () => {
  it('a fixed number in flight: TTFT, the gaps between tokens, tokens and outcome per request', async () => {
    const experiment: Experiment = {
      id: 'decode-4',
      purpose: 'test',
      identifies: ['stepTime.base.perDecodeSeq'],
      serverArgs: [],
      adapters: [],
      load: { kind: 'closed', concurrency: 4, promptTokens: 16, outputTokens: 6, requests: 8 },
      estimatedMinutes: 1,
    };
    const records = await runLoad(experiment, { baseUrl });
    expect(records).toHaveLength(8);
    for (const r of records) {
      expect(r.ok).toBe(true);
      expect(r.adapter).toBe('base-model');
      expect(r.outputTokens).toBe(6);
      expect(r.itlMs).toHaveLength(5);
      expect(r.ttftMs!).toBeGreaterThanOrEqual(FIRST_MS - 1);
    }
  });

  it('Poisson arrivals per adapter are seeded, and a refused request is recorded as failed', async () => {
    const experiment: Experiment = {
      id: 'serving',
      purpose: 'test',
      identifies: ['servingFit'],
      serverArgs: [],
      adapters: [
        { name: 'a', rank: 8 },
        { name: 'refused', rank: 8 },
      ],
      load: {
        kind: 'poisson',
        ratesPerAdapter: [20, 20],
        promptTokens: 8,
        outputTokens: 3,
        durationSeconds: 600,
      },
      estimatedMinutes: 1,
    };
    const first = await runLoad(experiment, { baseUrl, durationSeconds: 0.5, seed: 7 });
    const again = await runLoad(experiment, { baseUrl, durationSeconds: 0.5, seed: 7 });
    expect(first.map((r) => [r.adapter, r.sentS])).toEqual(again.map((r) => [r.adapter, r.sentS]));
    expect(first.filter((r) => r.adapter === 'a').every((r) => r.ok)).toBe(true);
    const refused = first.filter((r) => r.adapter === 'refused');
    expect(refused.length).toBeGreaterThan(0);
    expect(refused.every((r) => !r.ok && r.error === 'HTTP 404')).toBe(true);
  });
});
