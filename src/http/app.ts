import rateLimit from '@fastify/rate-limit';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import Fastify, { type FastifyBaseLogger } from 'fastify';
import {
  jsonSchemaTransform,
  jsonSchemaTransformObject,
  serializerCompiler,
  validatorCompiler,
  type ZodTypeProvider,
} from 'fastify-type-provider-zod';
import type { Logger } from 'pino';
import type { ServiceCore } from '../service/core.js';
import { InputError } from '../input/errors.js';
import { TWIN_VERSION } from '../twin/index.js';
import { ServiceMetrics } from './metrics.js';
import { problemContentTypes } from './openapi-doc.js';
import { jsonBodies } from './plugins/body.js';
import { sendProblem, toProblem } from './problems.js';
import { catalogRoutes } from './routes/catalog.js';
import { profileRoutes } from './routes/profiles.js';
import { deployRoutes } from './routes/deploy.js';
import { operationsRoutes } from './routes/operations.js';
import { planningRoutes } from './routes/planning.js';
import { placementRoutes } from './routes/placement.js';
import { runRoutes } from './routes/runs.js';

export interface AppOptions {
  core: ServiceCore;
  logger?: Logger;
  bodyLimitBytes?: number;
  rateLimitPerMinute?: number;
}

/** The HTTP API: shared plugins (bodies, problems, rate limit, docs, metrics), then one module per resource. */
export async function buildApp(options: AppOptions) {
  const { core } = options;
  const bodyLimit = options.bodyLimitBytes ?? 1_048_576;
  const app = Fastify({
    ...(options.logger
      ? { loggerInstance: options.logger as FastifyBaseLogger }
      : { logger: false }),
    bodyLimit,
    genReqId: () => crypto.randomUUID(),
    requestIdHeader: 'x-request-id',
    // Bad percent-escapes and over-long path parameters get problem+json like every other error.
    frameworkErrors: (error, request, reply) => {
      const { problem: p, headers } = toProblem(error, request);
      void sendProblem(reply, p, headers);
    },
  }).withTypeProvider<ZodTypeProvider>();
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  jsonBodies(app, bodyLimit);
  const metrics = new ServiceMetrics(core);

  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'loraplan',
        version: TWIN_VERSION,
        description:
          'Plans vLLM multi-LoRA serving: how many adapters to place on a GPU (--max-cpu-loras) and how many one batch may mix (--max-loras), from a digital twin of the vLLM V1 scheduler calibrated on real H100 runs and a random forest trained on it. Errors are RFC 9457 application/problem+json bodies that name the offending field. `POST /recommend`, `/simulate` and `/check` are stable aliases of their `/v1/` routes.',
      },
      tags: [
        { name: 'planning', description: 'Recommendations, simulations and checks' },
        { name: 'runs', description: 'Every answered request, stored' },
        { name: 'catalog', description: 'Profiles and trained models' },
        { name: 'operations', description: 'Health and metrics' },
      ],
    },
    transform: jsonSchemaTransform,
    transformObject: (input) => problemContentTypes(jsonSchemaTransformObject(input)),
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });
  await app.register(rateLimit, {
    max: options.rateLimitPerMinute ?? 6000,
    timeWindow: '1 minute',
    allowList: (req) => ['/healthz', '/readyz', '/metrics'].includes(req.url),
    errorResponseBuilder: (_req, ctx) =>
      ({
        statusCode: 429,
        message: `rate limit of ${ctx.max} requests per ${ctx.after} exceeded`,
      }) as unknown as Error,
  });

  app.setErrorHandler((error, request, reply) => {
    const { problem: p, headers } = toProblem(error, request);
    if (p.status >= 500) request.log.error({ err: error }, 'request failed');
    metrics.errors.inc({ status: String(p.status) });
    return sendProblem(reply, p, headers);
  });
  app.setNotFoundHandler((request, reply) =>
    sendProblem(reply, {
      type: 'https://loraplan.dev/problems/not-found',
      title: 'Not found',
      status: 404,
      detail: `no route ${request.method} ${request.url}`,
      instance: request.url,
    }),
  );
  // No route takes a list in its query: a parameter given twice is a client's mistake, named as
  // such rather than read as a list that a number or enum then fails to be.
  app.addHook('preValidation', (request, _reply, done) => {
    const query = request.query as Record<string, unknown> | undefined;
    const repeated = Object.entries(query ?? {}).filter(([, v]) => Array.isArray(v));
    if (repeated.length === 0) return done();
    done(
      new InputError(
        repeated.map(([key, v]) => ({
          field: `querystring.${key}`,
          message: `given ${(v as unknown[]).length} times; give it once`,
        })),
      ),
    );
  });
  app.addHook('onResponse', (request, reply, done) => {
    metrics.observe(
      request.routeOptions.url ?? 'unmatched',
      request.method,
      reply.statusCode,
      reply.elapsedTime,
    );
    done();
  });

  await app.register(planningRoutes, { core });
  await app.register(placementRoutes, { core });
  await app.register(runRoutes, { core });
  await app.register(catalogRoutes, { core });
  await app.register(profileRoutes, { core });
  await app.register(deployRoutes, { core });
  await app.register(operationsRoutes, { core, metrics });
  return app;
}
