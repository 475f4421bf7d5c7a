// Manifests an orchestrator applies as they are, from a stored recommendation or placement.
import { parseAllDocuments, stringify } from 'yaml';
import type { PlacementResponse } from '../placement/schema.js';
import type { RecommendResponse } from '../recommend/schema.js';
import { fromPlacement, fromRecommendation, type DeploySet } from './servers.js';
import { aibrixObjects, SERVER_LABEL } from './aibrix.js';
import { kserveObjects } from './kserve.js';
import {
  kubernetesObjects,
  productionStackObjects,
  vllmCommands,
  type DeployOptions,
  type DeployTarget,
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

const OBJECTS_OF: Record<
  Exclude<DeployTarget, 'vllm'>,
  (set: DeploySet, o: DeployOptions) => Array<Record<string, unknown>>
> = {
  kubernetes: kubernetesObjects,
  'production-stack': productionStackObjects,
  kserve: kserveObjects,
  aibrix: aibrixObjects,
};

/** Emits a target's manifests, each object validated against its schema first. */
export function emit(set: DeploySet, options: DeployOptions, modelsDir: string): Emitted {
  if (options.target === 'vllm')
    return { contentType: 'text/x-shellscript', body: vllmCommands(set, options), objects: [] };
  const objects = OBJECTS_OF[options.target](set, options);
  validateObjects(objects, modelsDir);
  if (options.format === 'json')
    return {
      contentType: 'application/json',
      body: `${JSON.stringify(objects, null, 1)}\n`,
      objects,
    };
  return {
    contentType: 'application/yaml',
    body: objects
      .map((o) => stringify(o, { lineWidth: 0, aliasDuplicateObjects: false }))
      .join('---\n'),
    objects,
  };
}

/** The parts of an emitted object that say which server it is and what it serves. */
interface EmittedObject {
  kind?: string;
  metadata?: { name?: string; annotations?: Record<string, string> };
  spec?: {
    template?: { spec?: { containers?: Array<{ args?: string[] }> } };
    predictor?: { containers?: Array<{ args?: string[] }> };
    podSelector?: { matchExpressions?: Array<{ key: string; values?: string[] }> };
  };
}

/** The adapters of a vLLM argument list's --lora-modules. */
function loraModules(args: readonly string[]): string[] {
  const at = args.indexOf('--lora-modules');
  const adapters: string[] = [];
  for (let i = at + 1; at >= 0 && i < args.length && !args[i]!.startsWith('--'); i++)
    adapters.push(args[i]!.split('=')[0]!);
  return adapters;
}

/**
 * The placement a set of emitted manifests deploys, as a placement request's `current`, so
 * re-placement starts from what is deployed. Each Deployment or InferenceService is a server (its
 * loraplan.dev/server annotation, else its name) serving the adapters of its --lora-modules;
 * AIBrix's ModelAdapters add each adapter (its loraplan.dev/adapter annotation, else its name)
 * to the servers their podSelector names.
 */
export function currentFromManifests(text: string): Array<{ id: string; adapters: string[] }> {
  const current: Array<{ id: string; adapters: string[] }> = [];
  const byObjectName = new Map<string, { id: string; adapters: string[] }>();
  const adapterObjects: EmittedObject[] = [];
  for (const doc of parseAllDocuments(text)) {
    const o = doc.toJSON() as EmittedObject | null;
    if (o?.kind === 'ModelAdapter') adapterObjects.push(o);
    if (!o || (o.kind !== 'Deployment' && o.kind !== 'InferenceService')) continue;
    const container =
      o.kind === 'Deployment'
        ? o.spec?.template?.spec?.containers?.[0]
        : o.spec?.predictor?.containers?.[0];
    const server = {
      id:
        o.metadata?.annotations?.['loraplan.dev/server'] ??
        o.metadata?.name ??
        `server-${current.length}`,
      adapters: loraModules(container?.args ?? []),
    };
    current.push(server);
    if (o.metadata?.name) byObjectName.set(o.metadata.name, server);
  }
  for (const a of adapterObjects) {
    const id = a.metadata?.annotations?.['loraplan.dev/adapter'] ?? a.metadata?.name;
    const servers = a.spec?.podSelector?.matchExpressions?.find((e) => e.key === SERVER_LABEL);
    if (!id) continue;
    for (const name of servers?.values ?? []) byObjectName.get(name)?.adapters.push(id);
  }
  return current;
}
