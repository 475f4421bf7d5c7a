/* eslint-disable @typescript-eslint/no-explicit-any -- parsed YAML documents, walked by path */
import { join } from 'node:path';
import { parse, parseAllDocuments } from 'yaml';
import { describe, expect, it } from 'vitest';
import {
  currentFromManifests,
  deployOptionsSchema,
  emit,
  fromPlacement,
  ManifestInvalidError,
} from '../src/deploy/index.js';
import { validateObjects } from '../src/deploy/validate.js';
import type { PlacementResponse } from '../src/placement/schema.js';
import { PACKAGE_ROOT } from '../src/profiles/store.js';

const MODELS = join(PACKAGE_ROOT, 'models');
const gpu = (id: string, adapters: Array<[string, number]>, slots: number, served: number) => ({
  id,
  adapters: adapters.map(([a, weight]) => ({ id: a, weight, rate: 0.1 * weight })),
  flags: { maxLoras: slots, maxCpuLoras: served, maxLoraRank: 16 },
  vllmArgs: [
    '--enable-lora',
    `--max-loras=${slots}`,
    `--max-cpu-loras=${served}`,
    '--max-lora-rank=16',
  ],
  offeredTokensPerSecond: 1000,
  throughputTokensPerSecond: 1000,
  completionRatio: 1,
  stable: true,
  ttftP99Ms: 500,
  itlP99Ms: 80,
  headroom: { percentAtLeast: 10, percentBelow: null },
});
/** A placement as the service answers it: "hot" split 0.6 / 0.4 over two GPUs. */
const placement = {
  profile: 'h100-64gb/llama-3.1-8b-instruct',
  objective: 'paper',
  gpus: [
    gpu(
      'gpu-0',
      [
        ['hot', 0.6],
        ['legal', 1],
        ['support', 1],
      ],
      8,
      16,
    ),
    gpu(
      'gpu-1',
      [
        ['hot', 0.4],
        ['finance', 1],
      ],
      8,
      8,
    ),
  ],
  routing: [
    {
      id: 'hot',
      replicas: [
        { gpu: 'gpu-0', weight: 0.6 },
        { gpu: 'gpu-1', weight: 0.4 },
      ],
    },
  ],
  unplaced: [],
  totals: {},
  lowerBound: {},
  warnings: [],
} as unknown as PlacementResponse;
const options = (target: string) => deployOptionsSchema.parse({ target });

describe('kubernetes manifests', () => {
  const out = emit(fromPlacement(placement), options('kubernetes'), MODELS);
  const docs = parseAllDocuments(out.body).map((d) => d.toJSON() as Record<string, any>);

  it('every document validates against its schema, and the servers carry the answer exactly', () => {
    expect(() => validateObjects(docs, MODELS)).not.toThrow();
    const deployments = docs.filter((d) => d.kind === 'Deployment');
    expect(deployments.map((d) => d.metadata.name)).toEqual(['gpu-0', 'gpu-1']);
    for (const [i, d] of deployments.entries()) {
      const args: string[] = d.spec.template.spec.containers[0].args;
      expect(args.slice(2, 6)).toEqual(placement.gpus[i]!.vllmArgs);
      const modules = args.slice(args.indexOf('--lora-modules') + 1).map((m) => m.split('=')[0]);
      expect(modules).toEqual(placement.gpus[i]!.adapters.map((a) => a.id));
      const flag = (name: string) =>
        Number(args.find((a) => a.startsWith(`--${name}=`))!.split('=')[1]);
      expect(flag('max-loras')).toBeLessThanOrEqual(flag('max-cpu-loras'));
    }
    expect(docs.filter((d) => d.kind === 'Service')).toHaveLength(2);
  });

  it("a replicated adapter's route weights are the placement's and sum to 1", () => {
    const rules = docs.filter((d) => d.kind === 'HTTPRoute').flatMap((d) => d.spec.rules);
    const hot = rules.find((r: any) => r.matches[0].headers[0].value === 'hot');
    const weights = hot.backendRefs.map((b: any) => b.weight / 1000);
    expect(weights).toEqual([0.6, 0.4]);
    expect(weights.reduce((a: number, b: number) => a + b, 0)).toBeCloseTo(1, 9);
    expect(rules).toHaveLength(4); // one rule per adapter
  });

  it('reads back as the placement it deploys (loraplan place --current-from)', () => {
    expect(currentFromManifests(out.body)).toEqual(
      placement.gpus.map((g) => ({ id: g.id, adapters: g.adapters.map((a) => a.id) })),
    );
  });

  it('an object off its schema is refused, naming it', () => {
    const bad = { ...docs[0], spec: { ...docs[0]!.spec, replicas: 'one' } };
    expect(() => validateObjects([bad], MODELS)).toThrow(/Deployment gpu-0/);
  });
});

describe('production-stack and vllm targets', () => {
  it('a LoraAdapter per adapter, its replicas the GPUs serving it, valid against the upstream CRD', () => {
    const out = emit(fromPlacement(placement), options('production-stack'), MODELS);
    const docs = parseAllDocuments(out.body).map((d) => d.toJSON() as Record<string, any>);
    const adapters = docs.filter((d) => d.kind === 'LoraAdapter');
    expect(adapters.map((a) => a.spec.adapterSource.adapterName).sort()).toEqual([
      'finance',
      'hot',
      'legal',
      'support',
    ]);
    expect(
      adapters.find((a) => a.metadata.name === 'hot')!.spec.loraAdapterDeploymentConfig.replicas,
    ).toBe(2);
    const values = docs.find((d) => d.kind === 'HelmValues')!.values;
    expect(values.servingEngineSpec.modelSpec.map((m: any) => m.vllmConfig.extraArgs)).toEqual(
      placement.gpus.map((g) => g.vllmArgs),
    );
    const broken = { ...adapters[0], spec: { adapterSource: { type: 'ftp', adapterName: 'x' } } };
    expect(() => validateObjects([broken], MODELS)).toThrow(ManifestInvalidError);
  });

  it("a LoraAdapter's source type follows the source's scheme", () => {
    const typeOf = (adapterSource: string) => {
      const out = emit(
        fromPlacement(placement),
        { ...options('production-stack'), adapterSource },
        MODELS,
      );
      return (out.objects[1]!.spec as { adapterSource: { type: string } }).adapterSource.type;
    };
    expect(typeOf('s3://bucket/{id}')).toBe('s3');
    expect(typeOf('https://hub.example/{id}.tar')).toBe('http');
    expect(typeOf('/adapters/{id}')).toBe('local');
  });

  it('the vllm target is the serve command per GPU, with its adapters loaded at start', () => {
    const out = emit(
      fromPlacement(placement),
      { ...options('vllm'), adapterSource: 's3://bucket/{id}' },
      MODELS,
    );
    expect(out.body).toContain(
      'CUDA_VISIBLE_DEVICES=1 vllm serve meta-llama/Llama-3.1-8B-Instruct --port=8000 --enable-lora --max-loras=8 --max-cpu-loras=8 --max-lora-rank=16 --lora-modules hot=s3://bucket/hot finance=s3://bucket/finance &',
    );
  });

  it('JSON output is the same objects', () => {
    const yaml = emit(fromPlacement(placement), options('kubernetes'), MODELS);
    const json = emit(
      fromPlacement(placement),
      { ...options('kubernetes'), format: 'json' },
      MODELS,
    );
    expect(JSON.parse(json.body)).toEqual(yaml.objects);
    expect(parse(yaml.body.split('---\n')[0]!)).toEqual(yaml.objects[0]);
  });
});

describe('kserve target', () => {
  const out = emit(fromPlacement(placement), options('kserve'), MODELS);
  const docs = parseAllDocuments(out.body).map((d) => d.toJSON() as Record<string, any>);
  const services = docs.filter((d) => d.kind === 'InferenceService');

  it("an InferenceService per GPU whose vLLM container carries the GPU's flags and adapters", () => {
    expect(() => validateObjects(docs, MODELS)).not.toThrow();
    expect(services.map((d) => d.metadata.name)).toEqual(['gpu-0', 'gpu-1']);
    for (const [i, d] of services.entries()) {
      expect(d.spec.predictor).toMatchObject({ minReplicas: 1, maxReplicas: 1 });
      const args: string[] = d.spec.predictor.containers[0].args;
      expect(args.slice(2, 6)).toEqual(placement.gpus[i]!.vllmArgs);
      const modules = args.slice(args.indexOf('--lora-modules') + 1).map((m) => m.split('=')[0]);
      expect(modules).toEqual(placement.gpus[i]!.adapters.map((a) => a.id));
    }
  });

  it("routes a replicated adapter to the predictors' Services with the placement's weights", () => {
    const rules = docs.filter((d) => d.kind === 'HTTPRoute').flatMap((d) => d.spec.rules);
    const hot = rules.find((r: any) => r.matches[0].headers[0].value === 'hot');
    expect(hot.backendRefs).toEqual([
      { name: 'gpu-0-predictor', port: 80, weight: 600 },
      { name: 'gpu-1-predictor', port: 80, weight: 400 },
    ]);
  });

  it('reads back as the placement it deploys', () => {
    expect(currentFromManifests(out.body)).toEqual(
      placement.gpus.map((g) => ({ id: g.id, adapters: g.adapters.map((a) => a.id) })),
    );
  });

  it('a predictor field the CRD lacks, or a container without a name, is refused', () => {
    const misspelt = {
      ...services[0],
      spec: { predictor: { ...services[0]!.spec.predictor, minReplica: 1 } },
    };
    expect(() => validateObjects([misspelt], MODELS)).toThrow(/InferenceService gpu-0/);
    const nameless = structuredClone(services[0]!);
    delete nameless.spec.predictor.containers[0].name;
    expect(() => validateObjects([nameless], MODELS)).toThrow(ManifestInvalidError);
    const noPredictor = { ...services[0], spec: {} };
    expect(() => validateObjects([noPredictor], MODELS)).toThrow(/predictor/);
  });
});

describe('aibrix target', () => {
  const out = emit(
    fromPlacement(placement),
    { ...options('aibrix'), adapterSource: 'huggingface://acme/{id}' },
    MODELS,
  );
  const docs = parseAllDocuments(out.body).map((d) => d.toJSON() as Record<string, any>);
  const adapters = docs.filter((d) => d.kind === 'ModelAdapter');

  it('a ModelAdapter per adapter, selecting exactly the GPUs that serve it, valid against the upstream CRD', () => {
    expect(() => validateObjects(docs, MODELS)).not.toThrow();
    const servers = (id: string) =>
      placement.gpus.filter((g) => g.adapters.some((a) => a.id === id)).map((g) => g.id);
    expect(adapters.map((a) => a.metadata.name).sort()).toEqual([
      'finance',
      'hot',
      'legal',
      'support',
    ]);
    for (const a of adapters) {
      expect(a.spec.podSelector.matchExpressions).toEqual([
        { key: 'loraplan.dev/server', operator: 'In', values: servers(a.metadata.name) },
      ]);
      expect(a.spec.replicas).toBe(servers(a.metadata.name).length);
      expect(a.spec.artifactURL).toBe(`huggingface://acme/${a.metadata.name}`);
    }
    const broken = { ...adapters[0], spec: { baseModel: 'x' } }; // no artifactURL, no podSelector
    expect(() => validateObjects([broken], MODELS)).toThrow(/ModelAdapter/);
  });

  it("each GPU's Deployment loads adapters at run time, with the GPU's flags and AIBrix's labels", () => {
    const deployments = docs.filter((d) => d.kind === 'Deployment');
    for (const [i, d] of deployments.entries()) {
      const pod = d.spec.template;
      expect(pod.metadata.labels).toMatchObject({
        'model.aibrix.ai/name': 'llama-3-1-8b-instruct',
        'adapter.model.aibrix.ai/enabled': 'true',
        'loraplan.dev/server': placement.gpus[i]!.id,
      });
      const container = pod.spec.containers[0];
      expect(container.env).toEqual([{ name: 'VLLM_ALLOW_RUNTIME_LORA_UPDATING', value: 'True' }]);
      expect(container.args.slice(3)).toEqual(placement.gpus[i]!.vllmArgs);
      expect(container.args).not.toContain('--lora-modules');
    }
  });

  it('reads back as the placement it deploys, from the ModelAdapters', () => {
    const current = currentFromManifests(out.body);
    expect(current.map((s) => ({ id: s.id, adapters: [...s.adapters].sort() }))).toEqual(
      placement.gpus.map((g) => ({ id: g.id, adapters: g.adapters.map((a) => a.id).sort() })),
    );
  });
});
