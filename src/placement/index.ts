import type { LatencyModel } from '../latency/index.js';
import { vllmArgs } from '../recommend/pairs.js';
import { InputError, type FieldIssue } from '../input/errors.js';
import {
  assertFitsModelLen,
  withTtftAcrossArrivals,
  type PointSimulator,
} from '../search/index.js';
import { evidenceWarning } from '../profiles/evidence.js';
import type { Profile } from '../twin/index.js';
import { lowerBound, reportedBound } from './bound.js';
import {
  VERIFY_SECONDS,
  estimateServes,
  judgeGpu,
  type CatalogAdapter,
  type PlacementContext,
} from './gpu.js';
import { estimateGpu, lengthsFor } from '../search/estimate.js';
import {
  PLACEMENT_CONCURRENCY,
  isHot,
  mapLimited,
  placeLoraplan,
  withinBudget,
  type PlacedGpu,
} from './loraplan.js';
import { replace, type CurrentPlacement } from './replace.js';
import { nextTurn } from './turns.js';
import type { PlacementRequest, PlacementResponse } from './schema.js';

export * from './schema.js';
export { zipfCatalog } from './catalogs.js';
export { parseTrace, TraceError } from './trace.js';
export type { CatalogAdapter } from './gpu.js';

export interface PlacementDeps {
  loadProfile: (id: string) => Profile;
  loadLatencyModel: (profileId: string) => LatencyModel | undefined;
  simulate: PointSimulator;
}

/** Headroom is stated in steps of this many percent, up to HEADROOM_MAX. */
const HEADROOM_STEP = 5;
const HEADROOM_MAX = 200;

/** Catalog entries the profile cannot serve at all, named by position (HTTP 400). */
function rankIssues(profile: Profile, catalog: readonly CatalogAdapter[]): FieldIssue[] {
  const largest = Math.max(...profile.allowedLoraRanks);
  return catalog
    .map((a, i) => ({ a, i }))
    .filter(({ a }) => a.rank > largest)
    .slice(0, 20)
    .map(({ a, i }) => ({
      field: `body.catalog[${i}].rank`,
      message: `adapter "${a.id}" has rank ${a.rank}; ${profile.id} allows at most ${largest}`,
    }));
}

/** Parses a current placement: per GPU, ids (whole) or {id, weight} (a replica). */
function currentOf(request: PlacementRequest): CurrentPlacement | undefined {
  return request.current?.map((gpu) =>
    gpu.adapters.map((a) =>
      typeof a === 'string' ? { id: a, weight: 1 } : { id: a.id, weight: a.weight ?? 1 },
    ),
  );
}

/**
 * The names of the answer's GPUs. A running GPU keeps its `id`, or without one its position's name
 * (gpu-3 stays gpu-3) unless another running GPU already carries that id; a GPU the answer opens
 * takes the first gpu-N no running GPU is called, so a name never points at two servers.
 */
export function gpuNames(
  current: PlacementRequest['current'],
  origins: ReadonlyArray<number | undefined>,
): string[] {
  const running = current ?? [];
  const taken = new Set(running.flatMap((g) => (g.id !== undefined ? [g.id] : [])));
  let next = 0;
  const fresh = () => {
    while (taken.has(`gpu-${next}`)) next++;
    const name = `gpu-${next}`;
    taken.add(name);
    return name;
  };
  const byPosition = running.map((g, i) => {
    if (g.id !== undefined) return g.id;
    return taken.has(`gpu-${i}`) ? undefined : (taken.add(`gpu-${i}`), `gpu-${i}`);
  });
  // Positional names clashing with an explicit id are given theirs after every other is known.
  const named = byPosition.map((n) => n ?? fresh());
  return origins.map((o) => (o !== undefined && o < running.length ? named[o]! : fresh()));
}

/**
 * How far a GPU's traffic can grow: the closed-form estimate proposes the largest multiplier it
 * serves (in 5% steps), and one one-hour twin run at it decides: served, the GPU has at least that
 * headroom; not served, less.
 */
async function headroomOf(ctx: PlacementContext, gpu: PlacedGpu) {
  const flags = gpu.verdict.flags;
  const serves = (m: number) =>
    estimateServes(
      ctx,
      estimateGpu(ctx.profile, ctx.lengths, {
        rates: gpu.pieces.map((p) => p.rate * m),
        maxLoras: flags.maxLoras,
        maxLoraRank: flags.maxLoraRank,
      }),
    );
  let percent = HEADROOM_STEP;
  while (percent < HEADROOM_MAX) {
    // One estimate a turn: each is over all the GPU's adapters, and there may be forty.
    await nextTurn();
    if (!serves(1 + (percent + HEADROOM_STEP) / 100)) break;
    percent += HEADROOM_STEP;
  }
  const twin = await judgeGpu(ctx, gpu.pieces, flags, VERIFY_SECONDS, 1 + percent / 100);
  return twin.serves
    ? { percentAtLeast: percent, percentBelow: null }
    : { percentAtLeast: 0, percentBelow: percent };
}

/**
 * Places a catalog (or re-places it from `current`) and explains the answer: per GPU its
 * adapters, flags, predicted load, latency and headroom; the router weights of replicated
 * adapters; what is unplaced and why; totals; and a lower bound on the GPU count.
 */
export async function placeCatalog(
  request: PlacementRequest,
  deps: PlacementDeps,
): Promise<PlacementResponse> {
  // The request was just read and checked on this turn: the placement starts on the next.
  await nextTurn();
  const profile = deps.loadProfile(request.profile);
  const issues = rankIssues(profile, request.catalog);
  if (issues.length > 0) throw new InputError(issues);
  const requestLengths = request.requestLengths ?? { kind: 'sharegpt' as const };
  assertFitsModelLen(profile, { requestLengths });
  const latencyModel = deps.loadLatencyModel(profile.id);
  const ctx: PlacementContext = {
    profile,
    lengths: lengthsFor(profile, requestLengths),
    requestLengths,
    starvationThreshold: request.starvationThreshold,
    objective: request.objective,
    ...(request.slo ? { slo: request.slo } : {}),
    ...(latencyModel ? { latencyModel } : {}),
    // A GPU's TTFT is read across arrival realisations only when a TTFT SLO decides on it:
    // packed GPUs sit near capacity, where each costs five simulations instead of one (a
    // 1,000-adapter catalog under p99 ITL <= 200 ms took 58 s that way instead of 18 s). ITL's
    // correction reads the TTFT regime too, so under an ITL SLO alone it reads one realisation's.
    simulate:
      request.slo?.ttftP99Ms !== undefined ? withTtftAcrossArrivals(deps.simulate) : deps.simulate,
  };
  const catalog = request.catalog;
  const byId = new Map(catalog.map((a) => [a.id, a]));
  const current = currentOf(request);
  // The bound needs nothing from the placement: its searches fill the pool's idle threads.
  const boundPromise = lowerBound(ctx, catalog);
  boundPromise.catch(() => undefined);
  await nextTurn();
  const fresh = await placeLoraplan(
    ctx,
    catalog,
    current ? {} : { ...(request.gpuBudget ? { gpuBudget: request.gpuBudget } : {}) },
  );
  const plan = current
    ? await withinBudget(ctx, await replace(ctx, catalog, current, fresh), request.gpuBudget, byId)
    : fresh;
  const [bound, headrooms] = await Promise.all([
    boundPromise,
    mapLimited(plan.gpus, PLACEMENT_CONCURRENCY, (g) => headroomOf(ctx, g)),
  ]);

  const names = gpuNames(
    request.current,
    plan.gpus.map((g) => (current ? g.origin : undefined)),
  );
  const runningNames = current
    ? gpuNames(
        request.current,
        current.map((_, i) => i),
      )
    : [];

  const gpus = plan.gpus.map((g, i) => {
    const point = g.verdict.point;
    const flags = g.verdict.flags;
    return {
      id: names[i]!,
      adapters: g.pieces.map((p) => ({ id: p.id, weight: p.weight, rate: p.rate })),
      flags,
      vllmArgs: vllmArgs(flags.maxCpuLoras, flags.maxLoras, flags.maxLoraRank),
      offeredTokensPerSecond: point.offeredTokensPerSecond,
      throughputTokensPerSecond: point.throughputTokensPerSecond,
      completionRatio:
        point.offeredTokensPerSecond > 0
          ? point.throughputTokensPerSecond / point.offeredTokensPerSecond
          : 1,
      stable: point.stable,
      ttftP99Ms: point.ttftP99Ms,
      itlP99Ms: point.itlP99Ms,
      headroom: headrooms[i]!,
    };
  });
  const replicas = new Map<string, Array<{ gpu: string; weight: number }>>();
  for (const g of gpus)
    for (const a of g.adapters)
      replicas.set(a.id, [...(replicas.get(a.id) ?? []), { gpu: g.id, weight: a.weight }]);
  const routing = [...replicas]
    .filter(([, r]) => r.length > 1)
    .map(([id, r]) => ({ id, replicas: r }));
  const tokens = ctx.lengths.prompt + ctx.lengths.output;
  const unplacedOffered = plan.unplaced.reduce((s, u) => s + u.rate * tokens, 0);

  const warnings: string[] = [];
  // Said of the answer: an adapter is called hot only when its own load is over half a GPU; one
  // split because the running placement split it is said to be so.
  for (const r of routing.slice(0, 10))
    warnings.push(
      isHot(ctx, byId.get(r.id)!)
        ? `adapter "${r.id}" is hotter than half a GPU: it is served by ${r.replicas.length} GPUs; route its requests by the weights in \`routing\``
        : `adapter "${r.id}" stays split over ${r.replicas.length} GPUs as it runs now: route its requests by the weights in \`routing\``,
    );
  if (routing.length > 10) warnings.push(`${routing.length - 10} more adapters are replicated`);
  const evidence = evidenceWarning(ctx.profile);
  if (evidence) warnings.push(evidence);
  if (plan.unplaced.length > 0)
    warnings.push(
      `${plan.unplaced.length} adapters are unplaced (${Math.round(unplacedOffered)} tok/s): see \`unplaced\` for why`,
    );
  const growing = gpus.filter((g) => !g.stable);
  if (growing.length > 0)
    warnings.push(
      `${growing.length} GPUs complete less than 99% of their load or let their queue grow (allowed by objective "${request.objective}"); their p99 TTFT reaches ${Math.round(Math.max(...growing.map((g) => g.ttftP99Ms)) / 1000)} s. Ask objective "stable" for GPUs whose queues stay bounded`,
    );

  if (request.slo) {
    const outside = plan.gpus.map((g) => g.verdict.point.latency?.outsideEnvelope ?? []);
    const judged = outside.filter((o) => o.length > 0).length;
    if (judged > 0)
      warnings.push(
        `${judged} GPUs were judged against the SLO on latency bounds whose coverage was not measured for them (${[...new Set(outside.flat().map((o) => o.feature))].join(', ')} outside the real runs the intervals come from): their SLO verdicts are the corrected twin's judgement, not a measured promise`,
      );
  }

  let moves: PlacementResponse['moves'];
  if (current) {
    const before = new Map<string, Set<string>>();
    current.forEach((gpu, i) => {
      for (const a of gpu) before.set(a.id, (before.get(a.id) ?? new Set()).add(runningNames[i]!));
    });
    const after = new Map<string, Set<string>>();
    for (const [id, r] of replicas) after.set(id, new Set(r.map((x) => x.gpu)));
    let moved = 0;
    let added = 0;
    for (const [id, set] of after) {
      const was = before.get(id);
      if (!was) added++;
      else if (was.size !== set.size || [...set].some((g) => !was.has(g))) moved++;
    }
    const removed = [...before.keys()].filter((id) => !byId.has(id)).length;
    moves = { moved, added, removed, freshGpus: fresh.gpus.length };
  }

  return {
    profile: profile.id,
    objective: request.objective,
    gpus,
    routing,
    unplaced: plan.unplaced,
    totals: {
      adapters: catalog.length,
      placedAdapters: replicas.size,
      replicatedAdapters: routing.length,
      gpus: gpus.length,
      offeredTokensPerSecond: gpus.reduce((s, g) => s + g.offeredTokensPerSecond, 0),
      throughputTokensPerSecond: gpus.reduce((s, g) => s + g.throughputTokensPerSecond, 0),
      unplacedOfferedTokensPerSecond: unplacedOffered,
    },
    lowerBound: reportedBound(bound, gpus.length, plan.unplaced.length === 0),
    ...(moves ? { moves } : {}),
    warnings,
  };
}
