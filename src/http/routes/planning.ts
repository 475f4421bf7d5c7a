import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { recommendRequestSchema, recommendResponseSchema } from '../../recommend/index.js';
import {
  checkRequestSchema,
  checkResponseSchema,
  simulateResponseSchema,
} from '../../service/check-schema.js';
import type { ServiceCore } from '../../service/core.js';
import { scenarioSchema } from '../../twin/index.js';
import { clientGone } from '../plugins/body.js';
import { errorResponses } from '../problems.js';

const EXAMPLE_RECOMMEND = {
  profile: 'h100-64gb/llama-3.1-8b-instruct',
  workload: { rates: [0.1, 0.05, 0.025], ranks: [8, 16] },
  method: 'auto',
};

/**
 * Recommendations, simulations and checks. Each answers at its versioned path and at the path of
 * the design the service was built from (`POST /recommend`, `/simulate`, `/check`): stable aliases
 * with the same schema and behaviour.
 */
export const planningRoutes: FastifyPluginAsyncZod<{ core: ServiceCore }> = async (
  app,
  { core },
) => {
  for (const prefix of ['/v1', ''] as const) {
    const aliasOf = (path: string) =>
      prefix === '' ? ` Stable alias of \`POST /v1${path}\`.` : '';

    app.post(
      `${prefix}/recommend`,
      {
        schema: {
          tags: ['planning'],
          summary: 'Recommend --max-cpu-loras and --max-loras for a workload',
          description:
            "`method: model` answers from the random forest in well under a millisecond, clamped into what vLLM can start and capped at the offered load and the profile's capacity; it says whether the workload lies inside the forest's training envelope. `twin` runs the optimum search with the digital twin (seconds); `auto` (default) takes the forest answer and checks it and its neighbours with the twin, or runs the twin search when the workload is outside the envelope, so it never returns a pair the twin says starves. The response carries the vLLM arguments, an explanation, and every pair the twin evaluated. Example body: " +
            JSON.stringify(EXAMPLE_RECOMMEND) +
            aliasOf('/recommend'),
          body: recommendRequestSchema,
          response: {
            200: recommendResponseSchema.extend({
              runId: z.string(),
              profile: z.string(),
              modelVersion: z.string().nullable(),
              twinVersion: z.string(),
              durationMs: z.number(),
            }),
            ...errorResponses(400, 404, 413, 415, 422, 429, 503),
          },
        },
      },
      async (request, reply) => {
        const { run, response } = await core.recommend(request.body, clientGone(reply));
        return {
          runId: run.id,
          profile: run.profile,
          modelVersion: run.modelVersion,
          twinVersion: run.twinVersion,
          durationMs: run.durationMs,
          ...response,
        };
      },
    );

    app.post(
      `${prefix}/simulate`,
      {
        schema: {
          tags: ['planning'],
          summary: 'Simulate one vLLM configuration under a workload with the digital twin',
          description:
            "The twin contract: a scenario in, its result out (throughput, offered load, starvation, TTFT and ITL, preemptions, adapter loads). `ttftMs` and `itlMs` are the engine's own; `latency` is what a client would see (the profile's correction, fitted on real runs) with intervals of measured coverage. Deterministic for a given seed. The stored run id is in the `loraplan-run-id` header." +
            aliasOf('/simulate'),
          body: scenarioSchema,
          response: {
            200: simulateResponseSchema,
            ...errorResponses(400, 404, 413, 415, 429, 503),
          },
        },
      },
      async (request, reply) => {
        const { run, result } = await core.simulate(request.body, clientGone(reply));
        void reply.header('loraplan-run-id', run.id);
        return result;
      },
    );

    app.post(
      `${prefix}/check`,
      {
        schema: {
          tags: ['planning'],
          summary:
            'Check a deployed configuration: ok, starving, infeasible, slo-violated or suboptimal',
          description:
            'For CI jobs. Simulates the configuration; if it serves the workload, compares it with the recommendation and reports the throughput left on the table (`suboptimal` beyond 5%). A configuration that can be simulated always gets a verdict, even when no recommendation can be compared with it. `adapterCount` defaults to `config.maxCpuLoras`.' +
            aliasOf('/check'),
          body: checkRequestSchema,
          response: {
            200: checkResponseSchema.extend({ runId: z.string() }),
            ...errorResponses(400, 404, 413, 415, 429, 503),
          },
        },
      },
      async (request, reply) => {
        const { run, response } = await core.check(request.body, clientGone(reply));
        return { runId: run.id, ...response };
      },
    );
  }
};
