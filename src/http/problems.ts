import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { hasZodFastifySchemaValidationErrors } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { ForestNotBuiltError, ModelUnavailableError } from '../model/model.js';
import { UnknownProfileError } from '../profiles/store.js';
import { NoServingConfigurationError } from '../recommend/index.js';
import { InputError, type FieldIssue } from '../input/errors.js';
import { SearchInputError } from '../search/index.js';
import { QueueUnavailableError, TwinJobFailedError } from '../runtime/runner.js';
import { PoolSaturatedError } from '../runtime/pool.js';
import { ClientGoneError, ComputationTimeoutError } from '../service/core.js';
import { BadCursorError } from '../storage/runs.js';

/** RFC 9457 problem details, with the offending fields named. */
export const problemSchema = z
  .object({
    type: z.string(),
    title: z.string(),
    status: z.number(),
    detail: z.string(),
    instance: z.string().optional(),
    errors: z.array(z.object({ field: z.string(), message: z.string() })).optional(),
    knownProfiles: z.array(z.string()).optional(),
  })
  .meta({ id: 'Problem' });
export type Problem = z.infer<typeof problemSchema>;

const TYPE = 'https://loraplan.dev/problems/';

export class HttpProblem extends Error {
  constructor(readonly problem: Omit<Problem, 'instance'>) {
    super(problem.detail);
  }
}

export function problem(
  status: number,
  slug: string,
  title: string,
  detail: string,
  extra: Partial<Problem> = {},
): HttpProblem {
  return new HttpProblem({ type: `${TYPE}${slug}`, title, status, detail, ...extra });
}

function zodPath(path: string): string {
  // fastify-type-provider-zod reports instancePath like "/workload/rates/0".
  return path
    .replace(/^\//, '')
    .split('/')
    .filter(Boolean)
    .map((p) => (/^\d+$/.test(p) ? `[${p}]` : p))
    .join('.')
    .replace(/\.\[/g, '[');
}

/** The kinds of problem this service answers with: slug, title and status. */
const KINDS = {
  invalid: ['invalid-request', 'Invalid request', 400],
  unknownProfile: ['unknown-profile', 'Unknown profile', 404],
  tooLarge: ['body-too-large', 'Request body too large', 413],
  uriTooLong: ['uri-too-long', 'URI too long', 414],
  mediaType: ['unsupported-media-type', 'Unsupported media type', 415],
  noServing: ['no-serving-configuration', 'No configuration serves this workload', 422],
  rateLimited: ['rate-limited', 'Too many requests', 429],
  internal: ['internal', 'Internal error', 500],
  unavailable: ['unavailable', 'Temporarily unavailable', 503],
  noModel: ['model-unavailable', 'No trained model', 503],
  noForest: ['forest-not-built', 'No forest for this profile', 422],
  twinJobFailed: ['twin-job-failed', 'A twin job failed on every attempt', 502],
} as const satisfies Record<string, readonly [string, string, number]>;

/** Maps anything thrown while handling a request to a problem; never leaks a stack trace. */
export function toProblem(
  error: unknown,
  request: FastifyRequest,
): { problem: Problem; headers?: Record<string, string> } {
  const instance = request.url;
  const of = (kind: keyof typeof KINDS, detail: string, extra: Partial<Problem> = {}) => {
    const [slug, title, status] = KINDS[kind];
    return { problem: { type: `${TYPE}${slug}`, title, status, detail, ...extra, instance } };
  };
  if (error instanceof HttpProblem) return { problem: { ...error.problem, instance } };
  if (hasZodFastifySchemaValidationErrors(error)) {
    const where = error.validationContext ?? 'body';
    const errors: FieldIssue[] = error.validation.map((v) => ({
      field: [where, zodPath(v.instancePath)].filter(Boolean).join('.'),
      message: v.message ?? 'invalid',
    }));
    return of('invalid', errors.map((e) => `${e.field}: ${e.message}`).join('; '), { errors });
  }
  if (error instanceof InputError) return of('invalid', error.message, { errors: error.issues });
  if (error instanceof UnknownProfileError) {
    return of('unknownProfile', error.message, { knownProfiles: error.known });
  }
  if (error instanceof SearchInputError) {
    return of(
      'invalid',
      error.field ? `${error.field}: ${error.message}` : error.message,
      error.field ? { errors: [{ field: `body.${error.field}`, message: error.message }] } : {},
    );
  }
  if (error instanceof BadCursorError) return of('invalid', error.message);
  if (error instanceof NoServingConfigurationError) return of('noServing', error.message);
  if (error instanceof TwinJobFailedError) return of('twinJobFailed', error.message);
  if (
    error instanceof QueueUnavailableError ||
    error instanceof PoolSaturatedError ||
    error instanceof ComputationTimeoutError ||
    error instanceof ClientGoneError
  ) {
    return { ...of('unavailable', error.message), headers: { 'retry-after': '5' } };
  }
  if (error instanceof ForestNotBuiltError) return of('noForest', error.message);
  if (error instanceof ModelUnavailableError) return of('noModel', error.message);
  const fe = error as Partial<FastifyError>;
  if (fe.code === 'FST_ERR_CTP_BODY_TOO_LARGE')
    return of('tooLarge', fe.message ?? 'body too large');
  if (fe.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') return of('mediaType', 'send application/json');
  if (fe.code === 'FST_ERR_MAX_PARAM_LENGTH')
    return of('uriTooLong', 'a path parameter is longer than this service accepts');
  if (fe.code === 'FST_ERR_BAD_URL')
    return of('invalid', 'the URL is not valid (a bad percent-escape?)');
  if (typeof fe.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500) {
    // Fastify's own client errors: malformed JSON, empty body, bad content length, rate limit.
    if (fe.statusCode === 429) return of('rateLimited', fe.message ?? 'rate limit exceeded');
    return of('invalid', fe.message ?? 'invalid request', { status: fe.statusCode });
  }
  return of('internal', 'an unexpected error occurred; it has been logged');
}

export function sendProblem(
  reply: FastifyReply,
  p: Problem,
  headers: Record<string, string> = {},
): FastifyReply {
  return reply.code(p.status).headers(headers).type('application/problem+json').send(p);
}

/** Documented error responses for a route's schema. */
export const errorResponses = (...statuses: number[]) =>
  Object.fromEntries(
    [...new Set([...statuses, 500])].map((s) => [
      s,
      problemSchema.describe(DESCRIPTIONS[s] ?? 'Error'),
    ]),
  );
const DESCRIPTIONS: Record<number, string> = {
  400: 'Invalid request: the problem names each offending field',
  404: 'Not found (an unknown profile lists the known ones)',
  413: 'Request body over the limit',
  414: 'A path parameter is too long',
  415: 'The body is not application/json, or has a Content-Encoding the service does not decode',
  500: 'Unexpected failure; it has been logged',
  422: 'No configuration on the candidate grid serves the workload, or method "model" on a profile with no forest of its own; the detail says why',
  429: 'Rate limit exceeded',
  503: 'The twin worker pool is saturated or the computation timed out; retry after the Retry-After header',
};
