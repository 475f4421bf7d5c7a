/* eslint-disable @typescript-eslint/no-explicit-any -- parsed YAML documents, walked by path */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { main } from '../src/cli/main.js';
import { scratchDir } from './scratch.js';

const dir = scratchDir('loraplan-cli-');
const file = (name: string, content: string) => {
  const path = join(dir, name);
  writeFileSync(path, content);
  return path;
};

async function run(argv: string[]) {
  let stdout = '';
  let stderr = '';
  const out = vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
    stdout += String(chunk);
    return true;
  });
  const err = vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => {
    stderr += String(chunk);
    return true;
  });
  try {
    const code = await main(argv);
    return { code, stdout, stderr };
  } finally {
    out.mockRestore();
    err.mockRestore();
  }
}

const small = (seed: number, rate: number) => ({
  profile: 'h100-64gb/llama-3.1-8b-instruct',
  config: { maxLoras: 8, maxCpuLoras: 16, maxLoraRank: 16 },
  workload: { rates: [rate], ranks: [16] },
  durationSeconds: 120,
  seed,
});

describe('loraplan simulate', () => {
  afterEach(() => vi.restoreAllMocks());

  it('prints one result JSON for a scenario file', async () => {
    const { code, stdout } = await run([
      'simulate',
      '--scenario',
      file('s.json', JSON.stringify(small(1, 0.2))),
    ]);
    expect(code).toBe(0);
    const result = JSON.parse(stdout);
    expect(result.feasible).toBe(true);
    expect(result.kvCacheTokens).toBe(302_000); // measured for 8 slots of rank 16 (kv_cache_profile.csv)
    expect(result.completedRequests).toBeGreaterThan(0);
    expect(result.starving).toBe(false);
  });

  it('names the bad field and exits 2 without a stack trace', async () => {
    const bad = { ...small(1, 0.2), config: { maxLoras: 8, maxCpuLoras: 4, maxLoraRank: 16 } };
    const { code, stderr } = await run([
      'simulate',
      '--scenario',
      file('bad.json', JSON.stringify(bad)),
    ]);
    expect(code).toBe(2);
    expect(stderr).toContain('config.maxCpuLoras');
    expect(stderr).not.toMatch(/\bat .*\.ts:\d+/);
  });

  it('rejects an unknown profile, listing the known ones', async () => {
    const { code, stderr } = await run([
      'simulate',
      '--scenario',
      file('p.json', JSON.stringify({ ...small(1, 0.2), profile: 'a100/x' })),
    ]);
    expect(code).toBe(2);
    expect(stderr).toContain('h100-64gb/qwen-2.5-7b-instruct');
  });

  it('runs a batch in parallel and prints results in input order', async () => {
    const scenarios = [small(1, 0.05), small(2, 0.4), small(3, 0.1)];
    const path = file('b.jsonl', scenarios.map((s) => JSON.stringify(s)).join('\n') + '\n');
    const { code, stdout } = await run(['simulate', '--batch', path, '--threads', '2']);
    expect(code).toBe(0);
    const lines = stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines).toHaveLength(3);
    // Same order as the input: offered load follows each line's rate.
    const single = await run([
      'simulate',
      '--scenario',
      file('s2.json', JSON.stringify(scenarios[1])),
    ]);
    expect(JSON.parse(single.stdout).throughputTokensPerSecond).toBe(
      lines[1].throughputTokensPerSecond,
    );
    expect(lines[0].offeredTokensPerSecond).toBeLessThan(lines[2].offeredTokensPerSecond);
    expect(lines[2].offeredTokensPerSecond).toBeLessThan(lines[1].offeredTokensPerSecond);
  });

  it('stops a batch at a bad line before running anything, naming the line', async () => {
    const path = file('bad.jsonl', `${JSON.stringify(small(1, 0.1))}\n{"profile": 3}\n`);
    const { code, stderr } = await run(['simulate', '--batch', path]);
    expect(code).toBe(2);
    expect(stderr).toContain('line 2');
    expect(stderr).toContain('profile');
  });

  it('gives usage errors for unknown flags', async () => {
    const { code, stderr } = await run(['simulate', '--scenaro', 'x']);
    expect(code).toBe(2);
    expect(stderr).toMatch(/Unknown option '--scenaro'/);
  });
});

describe('loraplan dataset', () => {
  afterEach(() => vi.restoreAllMocks());

  it('resumes an interrupted build without duplicating rows', async () => {
    const out = join(dir, 'ds.jsonl');
    const args = ['dataset', '--profile', 'h100-64gb/qwen-2.5-7b-instruct', '--out', out];
    expect((await run([...args, '--workloads', '1'])).code).toBe(0);
    const second = await run([...args, '--workloads', '2']);
    expect(second.code).toBe(0);
    expect(second.stderr).toContain('1 of 2 workloads already in');
    const rows = readFileSync(out, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { index: number });
    expect(rows.map((r) => r.index).sort()).toEqual([0, 1]);

    // Resuming with another seed would mix two samples of workloads: refused, file untouched.
    const other = await run([...args, '--workloads', '3', '--seed', '2']);
    expect(other.code).toBe(2);
    expect(other.stderr).toMatch(/workload 0 was built with seed 1 and 3600 s windows/);
    expect(readFileSync(out, 'utf8').trim().split('\n')).toHaveLength(2);
  }, 300_000);
});

describe('the loraplan bin', () => {
  it('runs when invoked through a link, as npx does', async () => {
    const { symlinkSync } = await import('node:fs');
    const { execFileSync } = await import('node:child_process');
    const link = join(scratchDir('loraplan-bin-'), 'loraplan');
    symlinkSync(join(process.cwd(), 'bin', 'loraplan.js'), link);
    const out = execFileSync(process.execPath, [link, '--help'], { encoding: 'utf8' });
    expect(out).toContain('usage: loraplan <command>');
  });
});

describe('the compiled CLI under repetition (what CI jobs run)', () => {
  it('exits 0 on 50 recommend --json runs, two at a time, never dying on a signal', async () => {
    const { spawn } = await import('node:child_process');
    const model = file(
      'model.json',
      JSON.stringify({
        profile: 'h100-64gb/llama-3.1-8b-instruct',
        workload: { rates: [0.1, 0.05, 0.025], ranks: [16] },
        method: 'model',
      }),
    );
    // A few runs that start and stop the worker pool too, on a tiny grid.
    const auto = file(
      'auto.json',
      JSON.stringify({
        profile: 'h100-64gb/llama-3.1-8b-instruct',
        workload: { rates: [0.05], ranks: [16] },
        method: 'auto',
        search: { concurrent: [8, 16], parallel: [8] },
      }),
    );
    const outcomes: Array<{ status: number | null; signal: string | null }> = [];
    // Two runs at a time, as two CI jobs on one runner would.
    const one = (i: number) =>
      new Promise<void>((done) => {
        const child = spawn(
          process.execPath,
          ['bin/loraplan.js', 'recommend', '--file', i % 10 === 9 ? auto : model, '--json'],
          { stdio: ['ignore', 'pipe', 'ignore'] },
        );
        let stdout = '';
        child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
        child.on('close', (status, signal) => {
          outcomes.push({ status, signal });
          if (status === 0)
            expect(JSON.parse(stdout).recommendation.parallelAdapters).toBeGreaterThan(0);
          done();
        });
      });
    for (let i = 0; i < 50; i += 2) await Promise.all([one(i), one(i + 1)]);
    expect(outcomes).toHaveLength(50);
    expect(outcomes.filter((o) => o.status !== 0)).toEqual([]);
  }, 300_000);
});

describe('loraplan recommend --emit', () => {
  const workload = file(
    'workload.json',
    JSON.stringify({
      profile: 'h100-64gb/llama-3.1-8b-instruct',
      workload: { rates: [0.1, 0.05, 0.025], ranks: [8, 16] },
      method: 'model',
    }),
  );

  it("prints the recommended server as the target's manifests, its flags the answer's", async () => {
    const json = await run(['recommend', '--file', workload, '--json']);
    const answer = JSON.parse(json.stdout) as {
      vllmArgs: string[];
      recommendation: { concurrentAdapters: number };
    };
    const r = await run([
      'recommend',
      '--file',
      workload,
      '--emit',
      'kserve',
      '--namespace',
      'llm',
    ]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const [service] = parseAllDocuments(r.stdout).map((d) => d.toJSON() as Record<string, any>);
    expect(service!.kind).toBe('InferenceService');
    expect(service!.metadata.namespace).toBe('llm');
    const args: string[] = service!.spec.predictor.containers[0].args;
    expect(args.slice(2, 2 + answer.vllmArgs.length)).toEqual(answer.vllmArgs);
    expect(args.slice(args.indexOf('--lora-modules') + 1)).toHaveLength(
      answer.recommendation.concurrentAdapters,
    );
  });

  it('an unknown target is named, exit 2', async () => {
    const r = await run(['recommend', '--file', workload, '--emit', 'helm']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/emit/);
    expect(r.stdout).toBe('');
  });
});

describe('loraplan place', () => {
  it('places a request log: rates from the log, ranks from --rank, one line per GPU', async () => {
    const lines = ['timestamp,adapter_id,prompt_tokens,output_tokens'];
    for (let i = 0; i < 400; i++)
      lines.push(`${i * 0.5},${i % 3 === 0 ? 'hot' : `cold-${i % 7}`},200,100`);
    const trace = file('requests.csv', `${lines.join('\n')}\n`);
    const r = await run([
      'place',
      '--trace',
      trace,
      '--profile',
      'h100-64gb/qwen-2.5-7b-instruct',
      '--rank',
      '16',
      '--json',
    ]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const answer = JSON.parse(r.stdout) as {
      gpus: Array<{ adapters: Array<{ id: string; rate: number }> }>;
      unplaced: unknown[];
    };
    const hot = answer.gpus.flatMap((g) => g.adapters).filter((a) => a.id === 'hot');
    // 134 of 400 requests over 199.5 s.
    expect(hot.reduce((s, a) => s + a.rate, 0)).toBeCloseTo(134 / 199.5, 9);
    expect(answer.unplaced).toEqual([]);
  }, 120_000);

  it('names the line of a request log it cannot read, exit 2', async () => {
    const trace = file('bad.csv', '0,a\n1,b\nnot-a-time,c\n');
    const r = await run([
      'place',
      '--trace',
      trace,
      '--profile',
      'h100-64gb/qwen-2.5-7b-instruct',
      '--rank',
      '8',
    ]);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(
      'loraplan place: line 3: "not-a-time" is not a timestamp (seconds or ISO 8601)\n',
    );
  });

  it('names the line of an adapter the request schema refuses, whatever the field', async () => {
    // A 5 MB adapter id on line 2 (after a header): the schema's catalog[0].id, as a log line.
    const trace = file('long-id.csv', `timestamp,adapter_id\n0,${'x'.repeat(5_000_000)}\n1,b\n`);
    const r = await run([
      'place',
      '--trace',
      trace,
      '--profile',
      'h100-64gb/qwen-2.5-7b-instruct',
      '--rank',
      '8',
    ]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^loraplan place: line 2: adapter id: Too big: .*200 characters\n$/);
  });
});

describe('loraplan profile derive', () => {
  it('writes a derived profile that another command then takes by file', async () => {
    const out = join(dir, 'l40s-qwen3.json');
    const derived = await run([
      'profile',
      'derive',
      '--gpu',
      'l40s',
      '--model',
      'qwen3-8b',
      '--max-model-len',
      '8192',
      '--fit-on',
      'h100-64gb/llama-3.1-8b-instruct',
      '--out',
      out,
    ]);
    expect(derived.code).toBe(0);
    const profile = JSON.parse(readFileSync(out, 'utf8')) as {
      id: string;
      evidence: string;
      maxModelLen: number;
      derivation: { fitOn: string[] };
    };
    expect(profile.evidence).toBe('derived');
    expect(profile.maxModelLen).toBe(8192);
    expect(profile.derivation.fitOn).toEqual(['h100-64gb/llama-3.1-8b-instruct']);
    expect(derived.stdout.split('\n')[0]).toBe(profile.id);
  });

  it('names the config field it cannot derive, and a file that is not JSON, without a stack', async () => {
    const moe = file(
      'moe.json',
      JSON.stringify({ architectures: ['MixtralForCausalLM'], num_local_experts: 8 }),
    );
    const refused = await run(['profile', 'derive', '--gpu', 'h200', '--config', moe]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/config\.num_local_experts: unsupported: a mixture of experts/);
    const truncated = file('truncated.json', '{"architectures": ["LlamaForCausalLM"], "hidden');
    const bad = await run(['profile', 'derive', '--gpu', 'h200', '--config', truncated]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('truncated.json: not valid JSON');
    expect(bad.stderr).not.toMatch(/\n\s+at /);
  });
});

describe('loraplan calibrate --runs', () => {
  it('starts from the derived profile and says which terms the runs cannot identify', async () => {
    const out = join(dir, 'calibrated.json');
    const res = await run([
      'calibrate',
      '--runs',
      join('test', 'fixtures', 'raw', 'llama-3.1-8b-instruct'),
      '--gpu',
      'h100-64gb',
      '--model',
      'llama-3.1-8b-instruct',
      '--out',
      out,
    ]);
    expect(res.code).toBe(0);
    // Four run folders: two served, one failed to start, one cancelled by the cluster.
    expect(res.stdout).toContain('4 runs (2 served, 1 failed to start)');
    expect(res.stdout).toMatch(
      /unchanged: stepTime\.lora \(2 served runs; a scale on it needs at least 3\)/,
    );
    const profile = JSON.parse(readFileSync(out, 'utf8')) as { evidence: string; id: string };
    expect(profile.evidence).toBe('calibrated');
    expect(profile.id).toMatch(/^h100-64gb\/llama-3\.1-8b-instruct@[0-9a-f]{12}$/);
  });

  it('a folder that does not exist is named, without a stack', async () => {
    const res = await run([
      'calibrate',
      '--runs',
      join(dir, 'missing'),
      '--gpu',
      'l4',
      '--model',
      'qwen3-8b',
    ]);
    expect(res.code).toBe(2);
    expect(res.stderr).toMatch(/missing: no such folder/);
    expect(res.stderr).not.toMatch(/\n\s+at /);
  });
});

describe('loraplan measure plan', () => {
  it('writes plan.json, run.sh and the derived starting profile, naming what a small budget leaves out', async () => {
    const out = join(dir, 'plan');
    const res = await run([
      'measure',
      'plan',
      '--gpu',
      'l40s',
      '--model',
      'qwen3-8b',
      '--budget-minutes',
      '12',
      '--ranks',
      '16',
      '--out',
      out,
    ]);
    expect(res.code).toBe(0);
    expect(res.stdout).toMatch(
      /not identified: servingFit: no experiment for it fits in 12 minutes/,
    );
    const plan = JSON.parse(readFileSync(join(out, 'plan.json'), 'utf8')) as {
      plannedMinutes: number;
      experiments: unknown[];
    };
    expect(plan.plannedMinutes).toBeLessThanOrEqual(12);
    expect(readFileSync(join(out, 'run.sh'), 'utf8')).toMatch(/^#!\/usr\/bin\/env bash/);
    expect(
      (JSON.parse(readFileSync(join(out, 'profile.json'), 'utf8')) as { evidence: string })
        .evidence,
    ).toBe('derived');
  });
});
