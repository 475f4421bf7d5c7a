import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { placementRequestSchema, placementResponseSchema } from '../../placement/index.js';
import type { ServiceCore } from '../../service/core.js';
import { clientGone } from '../plugins/body.js';
import { errorResponses } from '../problems.js';

/** Placement of an adapter catalog over GPUs. */
export const placementRoutes: FastifyPluginAsyncZod<{ core: ServiceCore }> = async (
  app,
  { core },
) => {
  app.post(
    '/v1/placement',
    {
      schema: {
        tags: ['planning'],
        summary: 'Place an adapter catalog on the fewest GPUs, every GPU verified by the twin',
        description:
          'Up to 10,000 adapters `{id, rate, rank}`. Adapters hotter than half a GPU are split over several GPUs (`routing` gives the router weights); each rank group is packed on its own GPUs with hot and cold adapters mixed; every GPU is judged by a one-hour twin run and repaired until it serves. Each GPU comes with its vLLM flags, predicted throughput, p99 TTFT and headroom; the answer gives a lower bound on the GPU count, what is unplaced (a `gpuBudget` binds) and, with `current`, how many adapters moved. Large catalogs take tens of seconds (LORAPLAN_PLACEMENT_TIMEOUT_MS, 900 s by default: three 10,000-adapter placements at once on 2 cores take about 270 s each). The run is stored: `GET /v1/runs/{runId}` and its `chart.svg`.',
        body: placementRequestSchema,
        response: {
          200: placementResponseSchema.extend({ runId: z.string(), durationMs: z.number() }),
          ...errorResponses(400, 404, 413, 415, 422, 429, 503),
        },
      },
    },
    async (request, reply) => {
      const { run, response } = await core.place(request.body, clientGone(reply));
      return { runId: run.id, durationMs: run.durationMs, ...response };
    },
  );
};
