import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/http/app.js';
import { ServiceCore } from '../../src/service/core.js';
import { openDatabase } from '../../src/storage/db.js';
import { ProfileRepository } from '../../src/storage/profiles.js';
import { derive, readDeriveCatalog } from '../../src/derive/index.js';
import { measuredProfiles, PACKAGE_ROOT } from '../../src/profiles/store.js';
import { scratchDir } from '../scratch.js';

type App = Awaited<ReturnType<typeof buildApp>>;

const dir = scratchDir('loraplan-profiles-');
const dbPath = join(dir, 'loraplan.db');
let app: App;
let core: ServiceCore;
beforeAll(async () => {
  core = new ServiceCore({ db: openDatabase(dbPath), threads: 2 });
  app = await buildApp({ core });
  await app.ready();
});
afterAll(async () => {
  await app.close();
  await core.close();
  rmSync(dir, { recursive: true, force: true });
});

const post = (a: App, url: string, payload: unknown) =>
  a.inject({
    method: 'POST',
    url,
    payload: JSON.stringify(payload),
    headers: { 'content-type': 'application/json' },
  });

const A100_LLAMA = {
  gpu: 'a100-80gb-sxm',
  model: 'llama-3.1-8b-instruct',
  flags: { maxModelLen: 32768 },
};

describe('POST /v1/profiles derives, stores and registers a profile', () => {
  it('answers 201 with a content-hashed id, then 200 with the same id for the same inputs', async () => {
    const first = await post(app, '/v1/profiles', A100_LLAMA);
    expect(first.statusCode).toBe(201);
    const profile = first.json() as {
      id: string;
      evidence: string;
      derivation: { fitOn: string[] };
    };
    expect(profile.id).toMatch(/^a100-80gb-sxm\/llama-3\.1-8b-instruct@[0-9a-f]{12}$/);
    expect(profile.evidence).toBe('derived');
    expect(profile.derivation.fitOn).toEqual([
      'h100-64gb/llama-3.1-8b-instruct',
      'h100-64gb/qwen-2.5-7b-instruct',
    ]);
    const again = await post(app, '/v1/profiles', A100_LLAMA);
    expect(again.statusCode).toBe(200);
    expect((again.json() as { id: string }).id).toBe(profile.id);
  });

  it('derives on its own thread exactly the profile the command derives in process', async () => {
    const answered = (await post(app, '/v1/profiles', A100_LLAMA)).json() as { id: string };
    const inProcess = derive(
      A100_LLAMA,
      readDeriveCatalog(join(PACKAGE_ROOT, 'models')),
      measuredProfiles(),
    );
    expect(answered).toEqual(JSON.parse(JSON.stringify(inProcess)));
  });

  it('lists every profile with its evidence, derived ones with their expected error', async () => {
    const { id } = (await post(app, '/v1/profiles', A100_LLAMA)).json() as { id: string };
    const list = (await app.inject({ url: '/v1/profiles' })).json() as {
      profiles: Array<{
        id: string;
        evidence: string;
        expectedError: Record<string, number> | null;
      }>;
    };
    const byId = new Map(list.profiles.map((p) => [p.id, p]));
    expect(byId.get('h100-64gb/llama-3.1-8b-instruct')?.evidence).toBe('measured');
    expect(byId.get('h100-64gb/llama-3.1-8b-instruct')?.expectedError).toBeNull();
    expect(byId.get(id)?.evidence).toBe('derived');
    expect(byId.get(id)?.expectedError?.throughputMapePct).toBeGreaterThan(0);
  });

  it('refuses a config it cannot derive with a 400 naming the field', async () => {
    const moe = await post(app, '/v1/profiles', {
      gpu: 'h100-80gb-sxm',
      config: { architectures: ['Qwen3MoeForCausalLM'], num_experts: 128, hidden_size: 2048 },
    });
    expect(moe.statusCode).toBe(400);
    const problem = moe.json() as { errors: Array<{ field: string; message: string }> };
    expect(problem.errors[0]?.field).toBe('config.num_experts');
    expect(problem.errors[0]?.message).toMatch(/mixture of experts/);
    const unknownGpu = await post(app, '/v1/profiles', { gpu: 'v100', model: 'qwen3-8b' });
    expect(unknownGpu.statusCode).toBe(400);
    expect((unknownGpu.json() as { errors: Array<{ field: string }> }).errors[0]?.field).toBe(
      'gpu',
    );
    const both = await post(app, '/v1/profiles', { gpu: 'l40s', model: 'qwen3-8b', config: {} });
    expect((both.json() as { errors: Array<{ field: string }> }).errors[0]?.field).toBe('model');
  });
});

describe('routes that take a profile take a derived one', () => {
  it('method "model" answers 422 saying why; "twin" answers with the twin search and says the profile is derived', async () => {
    const { id } = (await post(app, '/v1/profiles', A100_LLAMA)).json() as { id: string };
    const workload = { rates: [0.05, 0.025], ranks: [16] };
    const model = await post(app, '/v1/recommend', { profile: id, workload, method: 'model' });
    expect(model.statusCode).toBe(422);
    expect((model.json() as { detail: string }).detail).toMatch(/no forest of its own/);
    const twin = await post(app, '/v1/recommend', {
      profile: id,
      workload,
      method: 'twin',
      search: { concurrent: [8, 16], parallel: [8] },
    });
    expect(twin.statusCode).toBe(200);
    const answer = twin.json() as { recommendation: { warnings: string[] } };
    expect(
      answer.recommendation.warnings.some((w) => w.includes('is derived from a datasheet')),
    ).toBe(true);
  });

  it('a derived profile whose KV cache cannot hold max_model_len is infeasible in /v1/check', async () => {
    const { id } = (
      await post(app, '/v1/profiles', { gpu: 'l4', model: 'llama-3.1-8b-instruct' })
    ).json() as {
      id: string;
    };
    const check = await post(app, '/v1/check', {
      profile: id,
      workload: { rates: [0.01], ranks: [8] },
      config: { maxLoras: 1, maxCpuLoras: 1, maxLoraRank: 8 },
    });
    expect(check.statusCode).toBe(200);
    expect((check.json() as { verdict: string }).verdict).toBe('infeasible');
  });

  it('is stored: another connection to the database reads it back, equal to what was answered', async () => {
    const answered = (await post(app, '/v1/profiles', A100_LLAMA)).json() as { id: string };
    const stored = new ProfileRepository(openDatabase(dbPath)).all();
    expect(stored.find((p) => p.id === answered.id)).toEqual(answered);
  });
});

describe('placement takes a derived profile', () => {
  it('places a small catalog on derived GPUs and says the profile is derived', async () => {
    const { id } = (await post(app, '/v1/profiles', A100_LLAMA)).json() as { id: string };
    const res = await post(app, '/v1/placement', {
      profile: id,
      catalog: Array.from({ length: 6 }, (_, i) => ({ id: `a${i}`, rate: 0.05, rank: 16 })),
    });
    expect(res.statusCode).toBe(200);
    const placement = res.json() as { gpus: unknown[]; warnings: string[] };
    expect(placement.gpus.length).toBeGreaterThan(0);
    expect(placement.warnings.some((w) => w.includes('is derived from a datasheet'))).toBe(true);
  });
});
