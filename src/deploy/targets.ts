import { z } from 'zod';
import { dnsName, type DeploySet, type DeployServer } from './servers.js';

export const DEPLOY_TARGETS = [
  'vllm',
  'kubernetes',
  'production-stack',
  'kserve',
  'aibrix',
] as const;
export type DeployTarget = (typeof DEPLOY_TARGETS)[number];

/** What the manifests need beyond the plan; each has a default, documented in docs/deploy.md. */
export const deployOptionsSchema = z.object({
  target: z.enum(DEPLOY_TARGETS),
  format: z.enum(['yaml', 'json']).default('yaml'),
  model: z.string().min(1).max(300).default('meta-llama/Llama-3.1-8B-Instruct').meta({
    description: 'The base model vLLM serves (a Hugging Face id or a path in the image)',
  }),
  image: z.string().min(1).max(300).default('vllm/vllm-openai:v0.8.5'),
  namespace: z
    .string()
    .min(1)
    .max(63)
    .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/)
    .default('default'),
  adapterSource: z.string().min(1).max(300).default('/adapters/{id}').meta({
    description: "Where each adapter's weights are: {id} is replaced by the adapter's id",
  }),
  port: z.coerce.number().int().min(1).max(65535).default(8000),
});
export type DeployOptions = z.infer<typeof deployOptionsSchema>;

export const sourceOf = (o: DeployOptions, id: string) => o.adapterSource.replaceAll('{id}', id);

/** The vLLM container of one server: one GPU, ready when vLLM's /health answers. */
export function vllmContainer(
  name: string,
  args: string[],
  o: DeployOptions,
  env: Array<{ name: string; value: string }> = [],
): Record<string, unknown> {
  return {
    name,
    image: o.image,
    command: ['vllm', 'serve'],
    args,
    ...(env.length > 0 ? { env } : {}),
    ports: [{ name: 'http', containerPort: o.port, protocol: 'TCP' }],
    resources: { limits: { 'nvidia.com/gpu': '1' } },
    readinessProbe: { httpGet: { path: '/health', port: o.port }, periodSeconds: 5 },
  };
}

/** The `vllm serve` arguments of one server, its adapters loaded at start (--lora-modules). */
export function serveArgs(server: DeployServer, o: DeployOptions): string[] {
  return [
    o.model,
    `--port=${o.port}`,
    ...server.vllmArgs,
    ...(server.adapters.length > 0
      ? ['--lora-modules', ...server.adapters.map((a) => `${a.id}=${sourceOf(o, a.id)}`)]
      : []),
  ];
}

const q = (w: string) => (/^[\w@%+=:,./-]+$/.test(w) ? w : `'${w.replace(/'/g, `'\\''`)}'`);

/** Target "vllm": the command per server, as a shell script. */
export function vllmCommands(set: DeploySet, o: DeployOptions): string {
  return [
    '#!/usr/bin/env bash',
    `# ${set.servers.length} vLLM server(s) for ${set.profile}, planned by loraplan; one per GPU.`,
    'set -euo pipefail',
    ...set.servers.map(
      (s, i) =>
        `# ${s.name}: ${s.adapters.length} adapters\nCUDA_VISIBLE_DEVICES=${i} vllm serve ${serveArgs(s, o).map(q).join(' ')} &`,
    ),
    'wait',
    '',
  ].join('\n');
}

/** Gateway API: at most 16 rules per HTTPRoute (its CRD's maxItems). */
const RULES_PER_ROUTE = 16;
/** HTTPRoute weights are integers: traffic shares in thousandths. */
const WEIGHT_SCALE = 1000;

/**
 * Target "kubernetes": a Deployment and a Service per server, and the adapters' HTTPRoutes
 * (adapterRoutes). Plain objects; deploy/validate.ts checks them against the Kubernetes schemas.
 */
export function kubernetesObjects(
  set: DeploySet,
  o: DeployOptions,
): Array<Record<string, unknown>> {
  const objects: Array<Record<string, unknown>> = [];
  for (const s of set.servers) {
    const name = dnsName(s.name);
    const labels = {
      'app.kubernetes.io/name': 'vllm',
      'app.kubernetes.io/instance': name,
      'app.kubernetes.io/managed-by': 'loraplan',
    };
    objects.push({
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: {
        name,
        namespace: o.namespace,
        labels,
        annotations: { 'loraplan.dev/server': s.name },
      },
      spec: {
        replicas: 1,
        selector: { matchLabels: { 'app.kubernetes.io/instance': name } },
        template: {
          metadata: { labels },
          spec: {
            containers: [vllmContainer('vllm', serveArgs(s, o), o)],
          },
        },
      },
    });
    objects.push({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name, namespace: o.namespace, labels },
      spec: {
        selector: { 'app.kubernetes.io/instance': name },
        ports: [{ name: 'http', port: o.port, targetPort: o.port }],
      },
    });
  }
  objects.push(
    ...adapterRoutes(set, o.namespace, (server) => ({ name: dnsName(server), port: o.port })),
  );
  return objects;
}

/**
 * HTTPRoutes sending each adapter's requests (matched on the x-lora-adapter header) to the
 * Services of its servers, weighted as the placement routes it: one server at weight 1, or the
 * routing's replicas, in thousandths.
 */
export function adapterRoutes(
  set: DeploySet,
  namespace: string,
  backendOf: (server: string) => { name: string; port: number },
): Array<Record<string, unknown>> {
  const replicated = new Map(set.routing.map((r) => [r.id, r.replicas]));
  const seen = new Set<string>();
  const rules: Array<Record<string, unknown>> = [];
  for (const s of set.servers)
    for (const a of s.adapters) {
      if (seen.has(a.id)) continue;
      seen.add(a.id);
      const replicas = replicated.get(a.id) ?? [{ server: s.name, weight: 1 }];
      rules.push({
        matches: [{ headers: [{ type: 'Exact', name: 'x-lora-adapter', value: a.id }] }],
        backendRefs: replicas.map((r) => ({
          ...backendOf(r.server),
          weight: Math.round(r.weight * WEIGHT_SCALE),
        })),
      });
    }
  const routes: Array<Record<string, unknown>> = [];
  for (let i = 0; i < rules.length; i += RULES_PER_ROUTE)
    routes.push({
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'HTTPRoute',
      metadata: { name: dnsName(`loraplan-adapters-${i / RULES_PER_ROUTE}`), namespace },
      spec: {
        parentRefs: [{ name: 'inference-gateway' }],
        rules: rules.slice(i, i + RULES_PER_ROUTE),
      },
    });
  return routes;
}

/** production-stack's adapter source type, from the source's scheme (a path is `local`). */
const sourceType = (source: string) =>
  /^s3:\/\//.test(source) ? 's3' : /^https?:\/\//.test(source) ? 'http' : 'local';

/**
 * Target "production-stack": Helm values for vLLM's production-stack chart (one modelSpec per
 * server, its flags as extraArgs) and a LoraAdapter per adapter, its replicas the servers that
 * serve it.
 */
export function productionStackObjects(
  set: DeploySet,
  o: DeployOptions,
): Array<Record<string, unknown>> {
  const replicasOf = new Map<string, number>();
  for (const s of set.servers)
    for (const a of s.adapters) replicasOf.set(a.id, (replicasOf.get(a.id) ?? 0) + 1);
  const values = {
    servingEngineSpec: {
      runtimeClassName: '',
      modelSpec: set.servers.map((s) => ({
        name: dnsName(s.name),
        repository: o.image.split(':')[0],
        tag: o.image.split(':')[1] ?? 'latest',
        modelURL: o.model,
        replicaCount: 1,
        requestGPU: 1,
        vllmConfig: { extraArgs: s.vllmArgs },
      })),
    },
  };
  const adapters = [...replicasOf].map(([id, replicas]) => ({
    apiVersion: 'production-stack.vllm.ai/v1alpha1',
    kind: 'LoraAdapter',
    metadata: { name: dnsName(id), namespace: o.namespace },
    spec: {
      baseModel: o.model,
      adapterSource: {
        type: sourceType(sourceOf(o, id)),
        adapterName: id,
        adapterPath: sourceOf(o, id),
      },
      loraAdapterDeploymentConfig: { algorithm: 'default', replicas },
    },
  }));
  return [{ kind: 'HelmValues', chart: 'vllm/vllm-stack', values }, ...adapters];
}
