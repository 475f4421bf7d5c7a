import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { ServiceCore } from '../../service/core.js';
import { errorResponses } from '../problems.js';

/** The forests trained for the profiles (profiles themselves: routes/profiles.ts). */
export const catalogRoutes: FastifyPluginAsyncZod<{ core: ServiceCore }> = async (
  app,
  { core },
) => {
  app.get(
    '/v1/models',
    {
      schema: {
        tags: ['catalog'],
        summary: 'Trained forests: metadata, training envelope and cross-validation errors',
        description:
          'One entry per profile with a shipped forest, with the ranges of the workloads it was trained on (its envelope).',
        response: {
          200: z.object({ models: z.array(z.record(z.string(), z.unknown())) }),
          ...errorResponses(429),
        },
      },
    },
    async () => ({ models: core.models() }),
  );
};
