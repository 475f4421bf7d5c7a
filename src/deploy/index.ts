// Manifests an orchestrator applies as they are, from a stored recommendation or placement.
import { parseAllDocuments, stringify } from 'yaml';
import type { PlacementResponse } from '../placement/schema.js';
import type { RecommendResponse } from '../recommend/schema.js';
import { fromPlacement, fromRecommendation, type DeploySet } from './servers.js';
import {
  kubernetesObjects,
  productionStackObjects,
  vllmCommands,
  type DeployOptions,
} from './targets.js';
import { validateObjects } from './validate.js';

export {
  deployOptionsSchema,
  DEPLOY_TARGETS,
  type DeployOptions,
  type DeployTarget,
} from './targets.js';
export { ManifestInvalidError } from './validate.js';
export { fromPlacement, fromRecommendation, type DeploySet } from './servers.js';

export interface Emitted {
  contentType: string;
  body: string;
  objects: Array<Record<string, unknown>>;
}

/** A stored run's answer as a deploy set: placements and recommendations only. */
export function deploySetOf(
  kind: string,
  response: unknown,
  profile: string,
): DeploySet | undefined {
  if (kind === 'placement') return fromPlacement(response as PlacementResponse);
  if (kind === 'recommend')
    return (response as Partial<RecommendResponse> | null)?.recommendation
      ? fromRecommendation(response as RecommendResponse, profile)
      : undefined;
  return undefined;
}

/** Emits a target's manifests, each object validated against its schema first. */
export function emit(set: DeploySet, options: DeployOptions, modelsDir: string): Emitted {
  if (options.target === 'vllm')
    return { contentType: 'text/x-shellscript', body: vllmCommands(set, options), objects: [] };
  const objects =
    options.target === 'kubernetes'
      ? kubernetesObjects(set, options)
      : productionStackObjects(set, options);
  validateObjects(objects, modelsDir);
  if (options.format === 'json')
    return {
      contentType: 'application/json',
      body: `${JSON.stringify(objects, null, 1)}\n`,
      objects,
    };
  return {
    contentType: 'application/yaml',
    body: objects.map((o) => stringify(o, { lineWidth: 0 })).join('---\n'),
    objects,
  };
}

/**
 * The placement a set of emitted Kubernetes manifests deploys, as a placement request's
 * `current`: each Deployment's server (its loraplan.dev/server annotation, else its name) and
 * the adapters of its --lora-modules. Re-placement then starts from what is deployed.
 */
export function currentFromManifests(text: string): Array<{ id: string; adapters: string[] }> {
  const current: Array<{ id: string; adapters: string[] }> = [];
  for (const doc of parseAllDocuments(text)) {
    const o = doc.toJSON() as {
      kind?: string;
      metadata?: { name?: string; annotations?: Record<string, string> };
      spec?: { template?: { spec?: { containers?: Array<{ args?: string[] }> } } };
    } | null;
    if (!o || o.kind !== 'Deployment') continue;
    const args = o.spec?.template?.spec?.containers?.[0]?.args ?? [];
    const at = args.indexOf('--lora-modules');
    const adapters: string[] = [];
    for (let i = at + 1; at >= 0 && i < args.length && !args[i]!.startsWith('--'); i++)
      adapters.push(args[i]!.split('=')[0]!);
    current.push({
      id:
        o.metadata?.annotations?.['loraplan.dev/server'] ??
        o.metadata?.name ??
        `server-${current.length}`,
      adapters,
    });
  }
  return current;
}
