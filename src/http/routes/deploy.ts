import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { deployOptionsSchema } from '../../deploy/index.js';
import type { ServiceCore } from '../../service/core.js';
import { deployRun, DeployUnavailableError } from '../../service/deploy.js';
import { errorResponses, problem } from '../problems.js';

/** A stored run's answer as manifests an orchestrator applies. */
export const deployRoutes: FastifyPluginAsyncZod<{ core: ServiceCore }> = async (app, { core }) => {
  app.get(
    '/v1/runs/:id/deploy',
    {
      schema: {
        tags: ['runs'],
        summary: "A stored recommendation's or placement's manifests, for one target",
        description:
          'target "vllm": the vllm serve command per GPU with its --lora-modules; "kubernetes": a Deployment and a Service per GPU and Gateway API HTTPRoutes weighting each adapter\'s backends by the placement\'s routing; "production-stack": Helm values and a LoraAdapter per adapter. Every object is validated against its schema before it is sent (docs/deploy.md).',
        params: z.object({ id: z.string().max(100) }),
        querystring: deployOptionsSchema,
        response: {
          200: z.string().describe('YAML (multi-document), JSON or a shell script'),
          ...errorResponses(400, 404, 414, 422, 429),
        },
      },
    },
    async (request, reply) => {
      let emitted;
      try {
        emitted = deployRun(core.runs, request.params.id, request.query);
      } catch (e) {
        if (e instanceof DeployUnavailableError)
          throw problem(422, 'not-deployable', 'Nothing to deploy', e.message);
        throw e;
      }
      if (!emitted) throw problem(404, 'not-found', 'Run not found', `no run ${request.params.id}`);
      return reply.type(emitted.contentType).send(emitted.body);
    },
  );
};
