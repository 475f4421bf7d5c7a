import { dnsName, type DeploySet } from './servers.js';
import { adapterRoutes, serveArgs, vllmContainer, type DeployOptions } from './targets.js';

/**
 * KServe names the Service of an InferenceService's predictor `<name>-predictor` and serves it
 * on port 80 (RawDeployment mode), whatever port the container listens on.
 */
const PREDICTOR_SERVICE_PORT = 80;

/**
 * Target "kserve": an InferenceService per server whose predictor is the vLLM container itself
 * (KServe's custom-container predictor), so its flags are vLLM's own, adapters loaded at start
 * with --lora-modules. One replica: a replica is one planned GPU, with its own adapters. The
 * adapters' HTTPRoutes point at the predictors' Services with the placement's weights.
 */
export function kserveObjects(set: DeploySet, o: DeployOptions): Array<Record<string, unknown>> {
  const services = set.servers.map((s) => ({
    apiVersion: 'serving.kserve.io/v1beta1',
    kind: 'InferenceService',
    metadata: {
      name: dnsName(s.name),
      namespace: o.namespace,
      labels: { 'app.kubernetes.io/managed-by': 'loraplan' },
      annotations: {
        'serving.kserve.io/deploymentMode': 'RawDeployment',
        'loraplan.dev/server': s.name,
      },
    },
    spec: {
      predictor: {
        minReplicas: 1,
        maxReplicas: 1,
        containers: [vllmContainer('kserve-container', serveArgs(s, o), o)],
      },
    },
  }));
  const routes = adapterRoutes(set, o.namespace, (server) => ({
    name: `${dnsName(server)}-predictor`,
    port: PREDICTOR_SERVICE_PORT,
  }));
  return [...services, ...routes];
}
