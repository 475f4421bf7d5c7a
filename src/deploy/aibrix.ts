import { dnsName, type DeploySet } from './servers.js';
import { sourceOf, vllmContainer, type DeployOptions } from './targets.js';

/** The label of each planned server's pod: a ModelAdapter selects its servers by it. */
export const SERVER_LABEL = 'loraplan.dev/server';

/**
 * Target "aibrix": a Deployment per server, labelled as AIBrix discovers vLLM pods (the base
 * model's name and port, adapters enabled) and started with runtime adapter loading, one
 * Service for the base model, and a ModelAdapter per adapter whose podSelector names exactly the
 * servers the plan puts it on, with as many replicas. AIBrix's controller then loads each
 * adapter on those pods through vLLM's /v1/load_lora_adapter.
 */
export function aibrixObjects(set: DeploySet, o: DeployOptions): Array<Record<string, unknown>> {
  // AIBrix routes by this name: the pods' label, the Service, and vLLM's --served-model-name.
  const modelName = dnsName(o.model.split('/').pop() ?? o.model);
  const objects: Array<Record<string, unknown>> = [];
  for (const s of set.servers) {
    const name = dnsName(s.name);
    const labels = {
      'model.aibrix.ai/name': modelName,
      'model.aibrix.ai/port': String(o.port),
      'adapter.model.aibrix.ai/enabled': 'true',
      [SERVER_LABEL]: name,
      'app.kubernetes.io/managed-by': 'loraplan',
    };
    const args = [o.model, `--port=${o.port}`, `--served-model-name=${modelName}`, ...s.vllmArgs];
    objects.push({
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name, namespace: o.namespace, labels, annotations: { [SERVER_LABEL]: s.name } },
      spec: {
        replicas: 1,
        selector: { matchLabels: { [SERVER_LABEL]: name } },
        template: {
          metadata: { labels },
          spec: {
            containers: [
              vllmContainer('vllm', args, o, [
                { name: 'VLLM_ALLOW_RUNTIME_LORA_UPDATING', value: 'True' },
              ]),
            ],
          },
        },
      },
    });
  }
  objects.push({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: {
      name: modelName,
      namespace: o.namespace,
      labels: { 'model.aibrix.ai/name': modelName },
    },
    spec: {
      selector: { 'model.aibrix.ai/name': modelName },
      ports: [{ name: 'http', port: o.port, targetPort: o.port }],
    },
  });
  const serversOf = new Map<string, string[]>();
  for (const s of set.servers)
    for (const a of s.adapters)
      serversOf.set(a.id, [...(serversOf.get(a.id) ?? []), dnsName(s.name)]);
  for (const [id, servers] of serversOf)
    objects.push({
      apiVersion: 'model.aibrix.ai/v1alpha1',
      kind: 'ModelAdapter',
      metadata: {
        name: dnsName(id),
        namespace: o.namespace,
        annotations: { 'loraplan.dev/adapter': id },
      },
      spec: {
        baseModel: modelName,
        artifactURL: sourceOf(o, id),
        podSelector: {
          matchLabels: { 'model.aibrix.ai/name': modelName },
          matchExpressions: [{ key: SERVER_LABEL, operator: 'In', values: servers }],
        },
        replicas: servers.length,
      },
    });
  return objects;
}
