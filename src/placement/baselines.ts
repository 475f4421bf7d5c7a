import { maxLoraRankFor, type VllmFlags } from '../search/index.js';
import { vllmStarts } from '../twin/index.js';
import { estimateGpu } from '../search/estimate.js';
import {
  MAX_ADAPTERS_PER_GPU,
  estimateServes,
  flagsFor,
  type CatalogAdapter,
  type Piece,
  type PlacementContext,
} from './gpu.js';

/**
 * The placements loraplan is measured against, reimplemented from the published code
 * (FerranAgulloLopez/DistributedEfficientAdapterLLMServing, benchmarks/lora/placement_algorithm/).
 * Where they consult a learned model, they consult the closed-form estimate (src/placement/
 * estimate.ts) instead: the same for every method, and every GPU is judged by the twin afterwards.
 */
export type BaselineName = 'published-greedy' | 'loraserve' | 'ffd-rate' | 'round-robin';
export const BASELINES: readonly BaselineName[] = [
  'published-greedy',
  'loraserve',
  'ffd-rate',
  'round-robin',
];

/** A baseline's answer: GPUs with their flags, or why it could not place the catalog. */
export type BaselinePlacement =
  | { gpus: Array<{ pieces: Piece[]; flags: VllmFlags }>; failure?: undefined }
  | { gpus?: undefined; failure: string };

const whole = (a: CatalogAdapter): Piece => ({ id: a.id, rank: a.rank, rate: a.rate, weight: 1 });

/** Our flags for a baseline GPU that sets none itself; a GPU vLLM cannot start keeps 1 slot. */
function ownFlags(ctx: PlacementContext, pieces: Piece[]): VllmFlags {
  const chosen = flagsFor(ctx, pieces);
  if (chosen) return chosen.flags;
  return {
    maxLoras: 1,
    maxCpuLoras: pieces.length,
    maxLoraRank: maxLoraRankFor(
      ctx.profile,
      pieces.map((p) => p.rank),
    ),
  };
}

/** Largest, smallest, next largest, next smallest... (the published within-rank order). */
export function zigzag<T>(items: readonly T[], value: (t: T) => number): T[] {
  const sorted = [...items].sort((a, b) => value(a) - value(b));
  const out: T[] = [];
  while (sorted.length > 0) {
    out.push(sorted.pop()!);
    if (sorted.length > 0) out.push(sorted.shift()!);
  }
  return out;
}

/** The published method's tested adapter and slot counts. */
const TESTED_COUNTS = [8, 16, 32, 64, 96, 128, 160, 192, 256, 320, 384, 448, 512, 576];

/**
 * The published greedy (proposal_starvation_2_fast): ranks high to low, adapters of a rank in
 * zigzag rate order, one GPU filled at a time. At each tested adapter count the regressor rates
 * the current and the next tested slot count (where memory allows), the better is kept, and the
 * classifier decides starvation; on starvation the pending adapters go back and a new GPU opens.
 * Adapters left pending at the end are tested padded to the next count with the mean rate. It
 * fails, as the published code raises, when it runs out of GPUs (one per adapter here): an
 * adapter hotter than a GPU never passes a test.
 */
export function publishedGreedy(
  ctx: PlacementContext,
  catalog: readonly CatalogAdapter[],
): BaselinePlacement {
  const groups = new Map<number, CatalogAdapter[]>();
  for (const a of catalog) groups.set(a.rank, [...(groups.get(a.rank) ?? []), a]);
  const queue: Array<{ rank: number; adapters: CatalogAdapter[] }> = [...groups.keys()]
    .sort((a, b) => b - a)
    .map((rank) => ({ rank, adapters: zigzag(groups.get(rank)!, (a) => a.rate) }));
  interface Server {
    committed: CatalogAdapter[];
    slots: number;
    counts: number[];
    slotSteps: number[];
    pending: CatalogAdapter[];
  }
  const servers: Server[] = [];
  const newServer = (): Server => ({
    committed: [],
    slots: 0,
    counts: [...TESTED_COUNTS],
    slotSteps: [...TESTED_COUNTS],
    pending: [],
  });
  /** The published try_server_allocation: true when the pending adapters were committed. */
  const tryAllocation = (server: Server): boolean => {
    const target = server.counts[0]!;
    const members = [...server.committed, ...server.pending];
    const rates = members.map((a) => a.rate);
    const ranks = members.map((a) => a.rank);
    if (members.length < target) {
      const mean = rates.reduce((s, r) => s + r, 0) / rates.length;
      const minRank = Math.min(...ranks);
      while (rates.length < target) {
        rates.push(mean);
        ranks.push(minRank);
      }
    }
    const maxLoraRank = maxLoraRankFor(ctx.profile, ranks);
    const predict = (slots: number) =>
      slots > 0 && vllmStarts(ctx.profile, slots, maxLoraRank)
        ? estimateGpu(ctx.profile, ctx.lengths, { rates, maxLoras: slots, maxLoraRank })
        : undefined;
    const current = predict(server.slots);
    const next = server.slotSteps.length > 0 ? predict(server.slotSteps[0]!) : undefined;
    if (!current && !next) return false;
    const useNext =
      !current ||
      (next !== undefined && next.throughputTokensPerSecond >= current.throughputTokensPerSecond);
    const chosen = useNext ? next! : current;
    if (!estimateServes(ctx, chosen)) return false;
    if (useNext) {
      server.slots = server.slotSteps[0]!;
      server.slotSteps = server.slotSteps.slice(1);
    }
    server.committed.push(...server.pending);
    server.pending = [];
    server.counts = server.counts.slice(1);
    return true;
  };
  let server: Server | undefined;
  while (queue.length > 0) {
    const group = queue.shift()!;
    if (!server) {
      if (servers.length >= catalog.length)
        return { failure: 'not enough servers for the workload (published code raises)' };
      server = newServer();
      servers.push(server);
    }
    let closed = false;
    while (group.adapters.length > 0 && !closed) {
      server.pending.push(group.adapters.shift()!);
      if (server.committed.length + server.pending.length !== server.counts[0]) continue;
      if (tryAllocation(server)) {
        if (server.counts.length === 0) {
          closed = true;
          if (group.adapters.length > 0) queue.unshift(group);
        }
      } else {
        group.adapters.unshift(...server.pending);
        server.pending = [];
        queue.unshift(group);
        closed = true;
      }
    }
    if (queue.length === 0 && !closed && server.pending.length > 0) {
      // The last GPU's adapters short of a tested count: tested padded, as published.
      const pending = [...server.pending];
      if (!tryAllocation(server)) {
        server.pending = [];
        queue.unshift({ rank: group.rank, adapters: pending });
        closed = true;
      }
    }
    if (closed) server = undefined;
  }
  const gpus = servers
    .filter((s) => s.committed.length > 0)
    .map((s) => {
      const pieces = s.committed.map(whole);
      const maxLoraRank = maxLoraRankFor(
        ctx.profile,
        pieces.map((p) => p.rank),
      );
      return {
        pieces,
        flags: {
          maxLoras: Math.min(s.slots, pieces.length),
          maxCpuLoras: pieces.length,
          maxLoraRank,
        },
      };
    });
  return { gpus };
}

/** Largest-remainder rounding of weights to integers summing to `total`. */
function hamilton(weights: Map<number, number>, total: number): Map<number, number> {
  const sum = [...weights.values()].reduce((s, w) => s + w, 0);
  const out = new Map<number, number>();
  if (sum <= 0 || total <= 0) {
    for (const k of weights.keys()) out.set(k, 0);
    return out;
  }
  const quotas = [...weights].map(([k, w]) => ({ k, q: (w / sum) * total }));
  for (const { k, q } of quotas) out.set(k, Math.floor(q));
  let remaining = total - [...out.values()].reduce((s, v) => s + v, 0);
  const byRemainder = [...quotas].sort(
    (a, b) => b.q - Math.floor(b.q) - (a.q - Math.floor(a.q)) || b.k - a.k,
  );
  for (let i = 0; remaining > 0; i++, remaining--) {
    const k = byRemainder[i % byRemainder.length]!.k;
    out.set(k, out.get(k)! + 1);
  }
  return out;
}

/**
 * LoRAServe (lora_serve.py): per-rank operating points (the most tokens/s one GPU serves at that
 * rank; here the twin's, from the lower bound's searches), the fewest GPUs whose average
 * utilisation stays at most 1, GPU budgets per rank by largest remainder, fractional bin-packing
 * of each rank's adapters (largest demand first, onto the least-loaded GPU, splitting at the soft
 * capacity), leftovers to the least-loaded GPU preferring a higher max rank. As in the reference,
 * each GPU gets one slot per adapter it holds.
 */
export function loraServe(
  ctx: PlacementContext,
  catalog: readonly CatalogAdapter[],
  operatingPoints: ReadonlyMap<number, number>,
): BaselinePlacement {
  const tokens = ctx.lengths.prompt + ctx.lengths.output;
  const demand = (a: CatalogAdapter) => a.rate * tokens;
  const ranks = [...new Set(catalog.map((a) => a.rank))].sort((a, b) => a - b);
  const rankUtil = new Map<number, number>();
  for (const r of ranks) {
    const op = operatingPoints.get(maxLoraRankFor(ctx.profile, [r]));
    if (!op || op <= 0) return { failure: `no operating point for rank ${r}` };
    rankUtil.set(r, catalog.filter((a) => a.rank === r).reduce((s, a) => s + demand(a), 0) / op);
  }
  const totalUtil = [...rankUtil.values()].reduce((s, u) => s + u, 0);
  const servers = Math.max(1, Math.ceil(totalUtil - 1e-9));
  const targetUtil = totalUtil / servers;
  const budgets = hamilton(
    new Map([...rankUtil].map(([r, u]) => [r, targetUtil > 0 ? u / targetUtil : 0])),
    servers,
  );
  const load = new Array<number>(servers).fill(0);
  const maxRank = new Array<number>(servers).fill(0);
  const share = new Map<string, Map<number, number>>(catalog.map((a) => [a.id, new Map()]));
  const assign = (a: CatalogAdapter, server: number, phi: number) => {
    const m = share.get(a.id)!;
    m.set(server, (m.get(server) ?? 0) + phi);
    load[server]! += phi * demand(a);
    maxRank[server] = Math.max(maxRank[server]!, a.rank);
  };
  const leftovers: CatalogAdapter[] = [];
  let next = 0;
  const groupOf = new Map<number, number[]>();
  for (const r of [...ranks].reverse()) {
    const b = budgets.get(r) ?? 0;
    groupOf.set(
      r,
      Array.from({ length: b }, (_, i) => next + i),
    );
    next += b;
  }
  for (const r of [...ranks].reverse()) {
    const group = groupOf.get(r)!;
    const members = catalog.filter((a) => a.rank === r);
    if (group.length === 0) {
      leftovers.push(...members);
      continue;
    }
    const cap = targetUtil * operatingPoints.get(maxLoraRankFor(ctx.profile, [r]))!;
    for (const a of [...members].sort((x, y) => demand(y) - demand(x))) {
      const total = demand(a);
      if (total <= 0) {
        assign(
          a,
          group.reduce((m, s) => (load[s]! < load[m]! ? s : m), group[0]!),
          1,
        );
        continue;
      }
      let remaining = total;
      for (const s of [...group].sort((x, y) => load[x]! - load[y]!)) {
        if (remaining <= 1e-12) break;
        const room = cap - load[s]!;
        if (room <= 1e-12) continue;
        const take = Math.min(room, remaining);
        assign(a, s, take / total);
        remaining -= take;
      }
      if (remaining > 1e-9 * total) leftovers.push(a);
    }
  }
  for (const a of [...leftovers].sort((x, y) => y.rank - x.rank)) {
    const done = [...share.get(a.id)!.values()].reduce((s, v) => s + v, 0);
    const phi = Math.max(0, 1 - done);
    if (phi <= 1e-12) continue;
    const all = Array.from({ length: servers }, (_, i) => i);
    const higher = all.filter((s) => maxRank[s]! >= a.rank);
    const candidates = higher.length > 0 ? higher : all;
    assign(
      a,
      candidates.reduce((m, s) => (load[s]! < load[m]! ? s : m), candidates[0]!),
      phi,
    );
  }
  const gpus: Array<{ pieces: Piece[]; flags: VllmFlags }> = Array.from(
    { length: servers },
    () => ({
      pieces: [],
      flags: { maxLoras: 1, maxCpuLoras: 1, maxLoraRank: 8 },
    }),
  );
  for (const a of catalog) {
    const m = share.get(a.id)!;
    const sum = [...m.values()].reduce((s, v) => s + v, 0);
    for (const [s, phi] of m)
      gpus[s]!.pieces.push({
        id: a.id,
        rank: a.rank,
        rate: (a.rate * phi) / sum,
        weight: phi / sum,
      });
  }
  return {
    gpus: gpus
      .filter((g) => g.pieces.length > 0)
      .map((g) => ({
        pieces: g.pieces,
        flags: {
          maxLoras: g.pieces.length,
          maxCpuLoras: g.pieces.length,
          maxLoraRank: maxLoraRankFor(
            ctx.profile,
            g.pieces.map((p) => p.rank),
          ),
        },
      })),
  };
}

/**
 * First-fit decreasing by rate: adapters hottest first, each onto the first GPU whose offered load
 * stays within one GPU's capacity (the catalog's highest-rank best GPU, from the lower bound's
 * searches) and which holds fewer than the most adapters a GPU takes. Flags as loraplan sets them.
 */
export function firstFitDecreasing(
  ctx: PlacementContext,
  catalog: readonly CatalogAdapter[],
  capacityTokensPerSecond: number,
): BaselinePlacement {
  const tokens = ctx.lengths.prompt + ctx.lengths.output;
  const bins: Array<{ pieces: Piece[]; load: number }> = [];
  for (const a of [...catalog].sort((x, y) => y.rate - x.rate || (x.id < y.id ? -1 : 1))) {
    const offered = a.rate * tokens;
    let bin = bins.find(
      (b) => b.load + offered <= capacityTokensPerSecond && b.pieces.length < MAX_ADAPTERS_PER_GPU,
    );
    if (!bin) {
      bin = { pieces: [], load: 0 };
      bins.push(bin);
    }
    bin.pieces.push(whole(a));
    bin.load += offered;
  }
  return { gpus: bins.map((b) => ({ pieces: b.pieces, flags: ownFlags(ctx, b.pieces) })) };
}

/**
 * Round-robin in catalog order over k GPUs, for the smallest k (from `from`) on which the estimate
 * says nothing starves. Fails when no k up to one GPU per adapter does (an adapter hotter than a
 * GPU). Flags as loraplan sets them.
 */
export function roundRobin(
  ctx: PlacementContext,
  catalog: readonly CatalogAdapter[],
  from: number,
): BaselinePlacement {
  const deal = (k: number) => {
    const bins: Piece[][] = Array.from({ length: k }, () => []);
    catalog.forEach((a, i) => bins[i % k]!.push(whole(a)));
    return bins;
  };
  const serves = (k: number) =>
    deal(k).every((b) => {
      if (b.length > MAX_ADAPTERS_PER_GPU) return false;
      const f = flagsFor(ctx, b);
      return f !== undefined && estimateServes(ctx, f.estimate);
    });
  const most = catalog.length;
  let lo = Math.max(1, Math.min(from, most));
  if (serves(lo)) return { gpus: deal(lo).map((b) => ({ pieces: b, flags: ownFlags(ctx, b) })) };
  let hi = lo;
  while (hi < most && !serves(hi)) {
    lo = hi;
    hi = Math.min(most, hi * 2);
  }
  if (!serves(hi))
    return { failure: 'no GPU count serves every GPU (an adapter is hotter than a GPU)' };
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (serves(mid)) hi = mid;
    else lo = mid;
  }
  return { gpus: deal(hi).map((b) => ({ pieces: b, flags: ownFlags(ctx, b) })) };
}
