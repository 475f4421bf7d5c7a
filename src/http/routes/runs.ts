import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { LRUCache } from 'lru-cache';
import { z } from 'zod';
import type { RecommendResponse } from '../../recommend/index.js';
import { placementChart, recommendationHeatmap } from '../../service/chart.js';
import type { PlacementResponse } from '../../placement/index.js';
import type { ServiceCore } from '../../service/core.js';
import { errorResponses, problem } from '../problems.js';

const runSummarySchema = z.object({
  id: z.string(),
  kind: z.enum(['recommend', 'simulate', 'check', 'placement']),
  profile: z.string(),
  method: z.string().nullable(),
  verdict: z.string().meta({ description: "'ok', or the verdict of a check" }),
  summary: z
    .record(z.string(), z.union([z.number(), z.boolean(), z.string(), z.null()]))
    .meta({ description: "The answer's key numbers (adapters, slots, throughput, offered load)" }),
  createdAt: z.string(),
  durationMs: z.number(),
  twinVersion: z.string(),
  modelVersion: z.string().nullable(),
});
const runSchema = runSummarySchema
  .extend({ request: z.unknown(), response: z.unknown() })
  .meta({ id: 'Run' });

/** Stored runs: lists of summaries, one run whole, a recommendation's chart. */
export const runRoutes: FastifyPluginAsyncZod<{ core: ServiceCore }> = async (app, { core }) => {
  // A run never changes once stored, so its chart is drawn once.
  const charts = new LRUCache<string, string>({ max: 1000 });

  app.get(
    '/v1/runs',
    {
      schema: {
        tags: ['runs'],
        summary: 'List stored runs, newest first',
        description:
          "Summaries only (kind, profile, method, verdict, times and the answer's key numbers); `GET /v1/runs/{id}` returns a run whole. Filter by kind and profile; page with the opaque `cursor` returned as `nextCursor`.",
        querystring: z.strictObject({
          kind: z.enum(['recommend', 'simulate', 'check', 'placement']).optional(),
          profile: z.string().max(200).optional(),
          limit: z.coerce.number().int().min(1).max(200).default(50),
          cursor: z.string().max(200).optional(),
        }),
        response: {
          200: z.object({ runs: z.array(runSummarySchema), nextCursor: z.string().nullable() }),
          ...errorResponses(400, 429),
        },
      },
    },
    async (request) => core.runs.list(request.query),
  );

  app.get(
    '/v1/runs/:id',
    {
      schema: {
        tags: ['runs'],
        summary: 'One stored run: request, response and timings',
        description:
          'What was asked, what was answered, how long it took and with which twin and model versions.',
        params: z.object({ id: z.string().max(100) }),
        response: { 200: runSchema, ...errorResponses(400, 404, 414, 429) },
      },
    },
    async (request) => {
      const run = core.runs.get(request.params.id);
      if (!run) throw problem(404, 'not-found', 'Run not found', `no run ${request.params.id}`);
      return run;
    },
  );

  app.get(
    '/v1/runs/:id/chart.svg',
    {
      schema: {
        tags: ['runs'],
        summary: "A run's chart: a recommendation's heatmap, or a placement's load per GPU",
        description:
          "Each pair the twin evaluated, coloured by throughput, with starving, SLO-breaking and infeasible pairs marked and the answer outlined; beside it, each pair's p99 TTFT bound (sloMs) against the request's TTFT SLO (10 s without one). Only for recommend runs that evaluated pairs with the twin. For a placement run: one bar per GPU with its offered load, and its capacity as the twin bracketed it.",
        params: z.object({ id: z.string().max(100) }),
        response: {
          200: z.string().describe('image/svg+xml'),
          ...errorResponses(400, 404, 414, 429),
        },
      },
    },
    async (request, reply) => {
      const id = request.params.id;
      let svg = charts.get(id);
      if (svg === undefined) {
        const run = core.runs.get(id);
        if (run?.kind === 'placement') {
          svg = placementChart(run.response as PlacementResponse);
          charts.set(id, svg);
          return reply.type('image/svg+xml').send(svg);
        }
        if (!run || run.kind !== 'recommend')
          throw problem(404, 'not-found', 'Chart not found', `no recommend or placement run ${id}`);
        const response = run.response as RecommendResponse;
        if (!response.evaluated.some((e) => e.simulated))
          throw problem(
            404,
            'not-found',
            'Chart not found',
            'this recommendation evaluated no pair with the twin (method=model); ask with method=auto or twin',
          );
        const slo = (run.request as { slo?: { ttftP99Ms?: number } } | null)?.slo;
        svg = recommendationHeatmap(response, slo);
        charts.set(id, svg);
      }
      return reply.type('image/svg+xml').send(svg);
    },
  );
};
