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
import { z } from 'zod';
import { recommendationChart } from '../service/chart.js';
import { checkRequestSchema, checkResponseSchema, type ServiceCore } from '../service/core.js';
import {
  recommendRequestSchema,
  recommendResponseSchema,
  type RecommendResponse,
} from '../recommend/index.js';
import { scenarioSchema, simulationResultSchema, TWIN_VERSION } from '../twin/index.js';
import { ServiceMetrics } from './metrics.js';
import { errorResponses, problem, sendProblem, toProblem } from './problems.js';

export interface AppOptions {
  core: ServiceCore;
  logger?: Logger;
  bodyLimitBytes?: number;
  rateLimitPerMinute?: number;
}

const runSummarySchema = z.object({
  id: z.string(),
  kind: z.enum(['recommend', 'simulate', 'check']),
  profile: z.string(),
  method: z.string().nullable(),
  status: z.string(),
  createdAt: z.string(),
  durationMs: z.number(),
  twinVersion: z.string(),
  modelVersion: z.string().nullable(),
});
const runSchema = runSummarySchema
  .extend({ request: z.unknown(), response: z.unknown() })
  .meta({ id: 'Run' });

const EXAMPLE_RECOMMEND = {
  profile: 'h100-64gb/llama-3.1-8b-instruct',
  workload: { rates: [0.1, 0.05, 0.025], ranks: [8, 16] },
  method: 'auto',
};

export async function buildApp(options: AppOptions) {
  const { core } = options;
  const app = Fastify({
    ...(options.logger
      ? { loggerInstance: options.logger as FastifyBaseLogger }
      : { logger: false }),
    bodyLimit: options.bodyLimitBytes ?? 1_048_576,
    genReqId: () => crypto.randomUUID(),
    requestIdHeader: 'x-request-id',
  }).withTypeProvider<ZodTypeProvider>();
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  const metrics = new ServiceMetrics(core);

  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'loraplan',
        version: TWIN_VERSION,
        description:
          'Plans vLLM multi-LoRA serving: how many adapters to place on a GPU (--max-cpu-loras) and how many one batch may mix (--max-loras), from a digital twin of the vLLM V1 scheduler calibrated on real H100 runs and a random forest trained on it. Errors are RFC 9457 problem+json bodies that name the offending field.',
      },
      tags: [
        { name: 'planning', description: 'Recommendations, simulations and checks' },
        { name: 'runs', description: 'Every answered request, stored' },
        { name: 'catalog', description: 'Profiles and trained models' },
        { name: 'operations', description: 'Health and metrics' },
      ],
    },
    transform: jsonSchemaTransform,
    transformObject: jsonSchemaTransformObject,
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
  app.addHook('onResponse', (request, reply, done) => {
    metrics.observe(
      request.routeOptions.url ?? 'unmatched',
      request.method,
      reply.statusCode,
      reply.elapsedTime,
    );
    done();
  });

  app.post(
    '/v1/recommend',
    {
      schema: {
        tags: ['planning'],
        summary: 'Recommend --max-cpu-loras and --max-loras for a workload',
        description:
          '`method: model` answers from the random forest in well under a millisecond (snapped to the candidate grid when one is given); `twin` runs the optimum search with the digital twin (seconds); `auto` (default) takes the forest answer and checks it and its neighbours with the twin (cached), so it never returns a pair the twin says starves. The response carries the vLLM arguments, an explanation, and every pair the twin evaluated. Example body: ' +
          JSON.stringify(EXAMPLE_RECOMMEND),
        body: recommendRequestSchema,
        response: {
          200: recommendResponseSchema.extend({
            runId: z.string(),
            profile: z.string(),
            modelVersion: z.string().nullable(),
            twinVersion: z.string(),
            durationMs: z.number(),
          }),
          ...errorResponses(400, 404, 413, 422, 429, 503),
        },
      },
    },
    async (request) => {
      const { run, response } = await core.recommend(request.body);
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
    '/v1/simulate',
    {
      schema: {
        tags: ['planning'],
        summary: 'Simulate one vLLM configuration under a workload with the digital twin',
        description:
          'The twin contract: a scenario in, its result out (throughput, offered load, starvation, TTFT and ITL, preemptions, adapter loads). Deterministic for a given seed. The stored run id is in the `loraplan-run-id` header.',
        body: scenarioSchema,
        response: { 200: simulationResultSchema, ...errorResponses(400, 404, 413, 429, 503) },
      },
    },
    async (request, reply) => {
      const { run, result } = await core.simulate(request.body);
      void reply.header('loraplan-run-id', run.id);
      return result;
    },
  );

  app.post(
    '/v1/check',
    {
      schema: {
        tags: ['planning'],
        summary:
          'Check a deployed configuration: ok, starving, infeasible, slo-violated or suboptimal',
        description:
          'For CI jobs. Simulates the configuration; if it serves the workload, compares it with the recommendation and reports the throughput left on the table (`suboptimal` beyond 5%). `adapterCount` defaults to `config.maxCpuLoras`.',
        body: checkRequestSchema,
        response: {
          200: checkResponseSchema.extend({ runId: z.string() }),
          ...errorResponses(400, 404, 413, 429, 503),
        },
      },
    },
    async (request) => {
      const { run, response } = await core.check(request.body);
      return { runId: run.id, ...response };
    },
  );

  app.get(
    '/v1/runs',
    {
      schema: {
        tags: ['runs'],
        summary: 'List stored runs, newest first',
        description:
          'Filter by kind and profile; page with the opaque `cursor` returned as `nextCursor`.',
        querystring: z.strictObject({
          kind: z.enum(['recommend', 'simulate', 'check']).optional(),
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
    async (request) => {
      const page = core.runs.list(request.query);
      return {
        runs: page.runs.map(({ request: _q, response: _r, ...summary }) => summary),
        nextCursor: page.nextCursor,
      };
    },
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
        response: { 200: runSchema, ...errorResponses(404, 429) },
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
        summary:
          'Chart of a recommendation: throughput against concurrent adapters per parallel setting',
        description:
          'One line per parallel setting, starving points marked, the chosen pair circled. Only for recommend runs that evaluated pairs with the twin.',
        params: z.object({ id: z.string().max(100) }),
        response: { 200: z.string().describe('image/svg+xml'), ...errorResponses(404, 429) },
      },
    },
    async (request, reply) => {
      const run = core.runs.get(request.params.id);
      if (!run || run.kind !== 'recommend')
        throw problem(404, 'not-found', 'Chart not found', `no recommend run ${request.params.id}`);
      const response = run.response as RecommendResponse;
      if (!response.evaluated.some((e) => e.simulated)) {
        throw problem(
          404,
          'not-found',
          'Chart not found',
          'this recommendation evaluated no pair with the twin (method=model); ask with method=auto or twin',
        );
      }
      return reply.type('image/svg+xml').send(await recommendationChart(response));
    },
  );

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
              }),
            ),
          }),
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
        summary: 'Trained forests: metadata, hyperparameters and cross-validation errors',
        description: 'One entry per profile with a shipped forest.',
        response: { 200: z.object({ models: z.array(z.record(z.string(), z.unknown())) }) },
      },
    },
    async () => ({ models: core.models() }),
  );

  app.get(
    '/healthz',
    {
      schema: {
        tags: ['operations'],
        summary: 'Liveness',
        description: 'Answers while the event loop runs; never waits on the twin.',
        response: { 200: z.object({ status: z.literal('ok') }) },
      },
    },
    async () => ({ status: 'ok' as const }),
  );

  app.get(
    '/readyz',
    {
      schema: {
        tags: ['operations'],
        summary: 'Readiness: database, profiles and worker pool',
        description:
          'Ready when the database answers, profiles load and the worker pool has threads.',
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
        if (core.pool.threads === 0 || profiles === 0)
          throw new Error('no worker threads or no profiles');
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
        description: 'Request counts and latencies, cache hits, twin runs, queue depth.',
        hide: false,
      },
    },
    async (_request, reply) => {
      return reply.type(metrics.contentType).send(await metrics.render());
    },
  );

  return app;
}
