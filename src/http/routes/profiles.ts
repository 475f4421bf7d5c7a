import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { ServiceCore } from '../../service/core.js';
import { deriveRequestSchema, profileSummarySchema } from '../../service/profiles.js';
import { profileSchema } from '../../twin/profile.js';
import { errorResponses } from '../problems.js';

/** The profiles the twin simulates: the measured ones shipped in models/ and derived ones. */
export const profileRoutes: FastifyPluginAsyncZod<{ core: ServiceCore }> = async (
  app,
  { core },
) => {
  app.get(
    '/v1/profiles',
    {
      schema: {
        tags: ['catalog'],
        summary: 'GPU and model profiles, with what each rests on',
        description:
          'Every profile a route takes, as ids: measured ones ("gpu/model", shipped) and derived ones ("gpu/model@hash", posted to POST /v1/profiles), each with its evidence and, when derived, its expected error.',
        response: {
          200: z.object({ profiles: z.array(profileSummarySchema) }),
          ...errorResponses(429),
        },
      },
    },
    async () => ({ profiles: core.profiles() }),
  );

  app.post(
    '/v1/profiles',
    {
      schema: {
        tags: ['catalog'],
        summary: 'Derive a profile from a GPU datasheet and a model config',
        description:
          'Derives a profile for a GPU of the catalog and a model (a catalog id or a Hugging Face config.json): memory by vLLM\'s own accounting, step times from the bytes and FLOPs of each term times factors learned from the measured profiles (docs/profiles.md). Stored under a content-hashed id: the same inputs give the same id (200), new ones 201. Derivations run on a thread of their own (0.1 s to about 1 s each); past 16 waiting, 503. The profile has no forest: method "auto" answers with the twin search, "model" answers 422 until `loraplan dataset` and `train` have built one.',
        body: deriveRequestSchema,
        response: {
          200: profileSchema,
          201: profileSchema,
          ...errorResponses(400, 413, 415, 429, 503),
        },
      },
    },
    async (request, reply) => {
      const { profile, created } = await core.derivedProfiles.derive(request.body);
      return reply.code(created ? 201 : 200).send(profile);
    },
  );
};
