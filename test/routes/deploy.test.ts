/* eslint-disable @typescript-eslint/no-explicit-any -- parsed YAML documents, walked by path */
import { parseAllDocuments } from 'yaml';
import { describe, expect, it } from 'vitest';
import { withService, type App } from './service.js';

let app: App;
withService((a) => (app = a));
const post = (url: string, payload: unknown) =>
  app.inject({
    method: 'POST',
    url,
    payload: JSON.stringify(payload),
    headers: { 'content-type': 'application/json' },
  });

describe('GET /v1/runs/:id/deploy', () => {
  it("emits a stored placement's servers as Kubernetes objects, their flags and adapters the answer's", async () => {
    const placed = await post('/v1/placement', {
      profile: 'h100-64gb/llama-3.1-8b-instruct',
      catalog: Array.from({ length: 5 }, (_, i) => ({ id: `a${i}`, rate: 0.05, rank: 16 })),
    });
    expect(placed.statusCode).toBe(200);
    const answer = placed.json() as {
      runId: string;
      gpus: Array<{ id: string; vllmArgs: string[]; adapters: Array<{ id: string }> }>;
    };
    const res = await app.inject({
      url: `/v1/runs/${answer.runId}/deploy?target=kubernetes&namespace=serving&model=/models/llama`,
    });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toContain('application/yaml');
    const docs = parseAllDocuments(res.body).map((d) => d.toJSON() as Record<string, any>);
    const deployments = docs.filter((d) => d.kind === 'Deployment');
    expect(deployments).toHaveLength(answer.gpus.length);
    const args: string[] = deployments[0]!.spec.template.spec.containers[0].args;
    expect(args[0]).toBe('/models/llama');
    expect(args).toEqual(expect.arrayContaining(answer.gpus[0]!.vllmArgs));
    expect(deployments[0]!.metadata.namespace).toBe('serving');
  });

  it('emits the same run for KServe and AIBrix, one object per GPU and per adapter', async () => {
    const placed = await post('/v1/placement', {
      profile: 'h100-64gb/llama-3.1-8b-instruct',
      catalog: Array.from({ length: 3 }, (_, i) => ({ id: `b${i}`, rate: 0.05, rank: 16 })),
    });
    const answer = placed.json() as { runId: string; gpus: Array<{ vllmArgs: string[] }> };
    const kinds = async (target: string) => {
      const res = await app.inject({ url: `/v1/runs/${answer.runId}/deploy?target=${target}` });
      expect(res.statusCode).toBe(200);
      return parseAllDocuments(res.body).map((d) => (d.toJSON() as { kind: string }).kind);
    };
    const gpus = answer.gpus.length;
    expect((await kinds('kserve')).filter((k) => k === 'InferenceService')).toHaveLength(gpus);
    const aibrix = await kinds('aibrix');
    expect(aibrix.filter((k) => k === 'Deployment')).toHaveLength(gpus);
    expect(aibrix.filter((k) => k === 'ModelAdapter')).toHaveLength(3);
  });

  it('names a bad target, and refuses a run with nothing to deploy', async () => {
    const bad = await app.inject({ url: '/v1/runs/x/deploy?target=nomad' });
    expect(bad.statusCode).toBe(400);
    expect((bad.json() as { errors: Array<{ field: string }> }).errors[0]?.field).toBe(
      'querystring.target',
    );
    const sim = await post('/v1/simulate', {
      profile: 'h100-64gb/llama-3.1-8b-instruct',
      config: { maxLoras: 8, maxCpuLoras: 8, maxLoraRank: 16 },
      workload: { rates: [0.1], ranks: [16] },
      durationSeconds: 60,
    });
    const id = sim.headers['loraplan-run-id'] as string;
    const refused = await app.inject({ url: `/v1/runs/${id}/deploy?target=vllm` });
    expect(refused.statusCode).toBe(422);
    expect((refused.json() as { detail: string }).detail).toMatch(
      /only recommend and placement runs/,
    );
    const missing = await app.inject({ url: '/v1/runs/nope/deploy?target=vllm' });
    expect(missing.statusCode).toBe(404);
  });
});
