import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { ServiceCore } from '../../service/core.js';
import type { ServiceMetrics } from '../metrics.js';
import { errorResponses, problem } from '../problems.js';

/** Liveness, readiness and metrics: none of them waits on the twin. */
export const operationsRoutes: FastifyPluginAsyncZod<{
  core: ServiceCore;
  metrics: ServiceMetrics;
}> = async (app, { core, metrics }) => {
  app.get(
    '/healthz',
    {
      schema: {
        tags: ['operations'],
        summary: 'Liveness',
        description: 'Answers while the event loop runs; never waits on the twin.',
        response: { 200: z.object({ status: z.literal('ok') }), ...errorResponses() },
      },
    },
    async () => ({ status: 'ok' as const }),
  );

  app.get(
    '/readyz',
    {
      schema: {
        tags: ['operations'],
        summary: 'Readiness: database, profiles and twin workers',
        description:
          'Ready when the database answers, profiles load and twin work can run: the worker pool has threads, or, with the queue backend (LORAPLAN_REDIS_URL), Redis answers and at least one `loraplan worker` is connected.',
        response: {
          200: z.object({ status: z.literal('ready'), profiles: z.number(), models: z.number() }),
          ...errorResponses(503),
        },
      },
    },
    async () => {
      try {
        core.runs.count();
        const profiles = core.profiles().length;
        if (profiles === 0) throw new Error('no profiles');
        const why = await core.runner.notReady();
        if (why) throw new Error(why);
        return { status: 'ready' as const, profiles, models: core.models().length };
      } catch (e) {
        throw problem(503, 'not-ready', 'Not ready', (e as Error).message);
      }
    },
  );

  app.get(
    '/metrics',
    {
      schema: {
        tags: ['operations'],
        summary: 'Prometheus metrics',
        description:
          'Request counts and latencies, cache hits, twin runs, cancelled twin work, queue depth; with the queue backend also active and failed jobs and jobs completed per worker.',
        response: { 200: z.string().describe('text/plain; version=0.0.4'), ...errorResponses() },
      },
    },
    async (_request, reply) => reply.type(metrics.contentType).send(await metrics.render()),
  );
};
