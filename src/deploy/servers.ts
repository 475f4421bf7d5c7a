import type { PlacementResponse } from '../placement/schema.js';
import type { RecommendResponse } from '../recommend/schema.js';

/** One vLLM server to deploy: its flags and the adapters it serves, with their traffic shares. */
export interface DeployServer {
  name: string;
  vllmArgs: string[];
  adapters: Array<{ id: string; weight: number }>;
}

export interface DeploySet {
  profile: string;
  servers: DeployServer[];
  /** Adapters served by several servers, with the share of traffic each gets (sums to 1). */
  routing: Array<{ id: string; replicas: Array<{ server: string; weight: number }> }>;
}

/** Kubernetes names: lowercase alphanumerics and '-', at most 63 characters. */
export const dnsName = (s: string) =>
  s
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 63) || 'x';

/** A stored placement's GPUs as servers, its routing as is. */
export function fromPlacement(p: PlacementResponse): DeploySet {
  return {
    profile: p.profile,
    servers: p.gpus.map((g) => ({
      name: g.id,
      vllmArgs: g.vllmArgs,
      adapters: g.adapters.map((a) => ({ id: a.id, weight: a.weight })),
    })),
    routing: p.routing.map((r) => ({
      id: r.id,
      replicas: r.replicas.map((x) => ({ server: x.gpu, weight: x.weight })),
    })),
  };
}

/**
 * A stored recommendation as one server. A workload names no adapters, so its
 * --max-cpu-loras adapters are adapter-0, adapter-1, ...: rename them in the output.
 */
export function fromRecommendation(r: RecommendResponse, profile: string): DeploySet {
  const count = r.recommendation.concurrentAdapters;
  return {
    profile,
    servers: [
      {
        name: 'vllm-0',
        vllmArgs: r.vllmArgs,
        adapters: Array.from({ length: count }, (_, i) => ({ id: `adapter-${i}`, weight: 1 })),
      },
    ],
    routing: [],
  };
}
