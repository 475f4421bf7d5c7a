import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { latencyEnvelopeSchema } from '../../latency/index.js';
import type { ServiceCore } from '../../service/core.js';
import { errorResponses } from '../problems.js';

/** The profiles the twin can simulate and the forests trained for them. */
export const catalogRoutes: FastifyPluginAsyncZod<{ core: ServiceCore }> = async (
  app,
  { core },
) => {
  app.get(
    '/v1/profiles',
    {
      schema: {
        tags: ['catalog'],
        summary: 'Calibrated GPU and model profiles',
        description: 'The profiles the twin can simulate, as gpu/model ids.',
        response: {
          200: z.object({
            profiles: z.array(
              z.object({
                id: z.string(),
                gpu: z.string(),
                model: z.string(),
                vllmVersion: z.string(),
                maxModelLen: z.number(),
                allowedLoraRanks: z.array(z.number()),
                latencyCalibration: z
                  .object({
                    coverage: z.number(),
                    runs: z.number().int(),
                    envelope: latencyEnvelopeSchema,
                  })
                  .nullable()
                  .meta({
                    description:
                      "What the latency intervals' coverage was measured on (null: no latency calibration). Predictions outside these ranges say so (latency.envelope).",
                  }),
              }),
            ),
          }),
          ...errorResponses(429),
        },
      },
    },
    async () => ({ profiles: core.profiles() }),
  );

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
