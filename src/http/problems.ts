import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { hasZodFastifySchemaValidationErrors } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { ModelUnavailableError } from '../model/model.js';
import { UnknownProfileError } from '../profiles/store.js';
import { NoServingConfigurationError } from '../recommend/index.js';
import { InputError, type FieldIssue } from '../runtime/errors.js';
import { SearchInputError } from '../search/index.js';
import { ComputationTimeoutError, PoolSaturatedError } from '../service/core.js';
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

/** Maps anything thrown while handling a request to a problem; never leaks a stack trace. */
export function toProblem(
  error: unknown,
  request: FastifyRequest,
): { problem: Problem; headers?: Record<string, string> } {
  const instance = request.url;
  if (error instanceof HttpProblem) return { problem: { ...error.problem, instance } };
  if (hasZodFastifySchemaValidationErrors(error)) {
    const where = error.validationContext ?? 'body';
    const errors: FieldIssue[] = error.validation.map((v) => ({
      field: [where, zodPath(v.instancePath)].filter(Boolean).join('.'),
      message: v.message ?? 'invalid',
    }));
    return {
      problem: {
        type: `${TYPE}invalid-request`,
        title: 'Invalid request',
        status: 400,
        detail: errors.map((e) => `${e.field}: ${e.message}`).join('; '),
        errors,
        instance,
      },
    };
  }
  if (error instanceof InputError) {
    return {
      problem: {
        type: `${TYPE}invalid-request`,
        title: 'Invalid request',
        status: 400,
        detail: error.message,
        errors: error.issues,
        instance,
      },
    };
  }
  if (error instanceof UnknownProfileError) {
    return {
      problem: {
        type: `${TYPE}unknown-profile`,
        title: 'Unknown profile',
        status: 404,
        detail: error.message,
        knownProfiles: error.known,
        instance,
      },
    };
  }
  if (error instanceof SearchInputError || error instanceof BadCursorError) {
    return {
      problem: {
        type: `${TYPE}invalid-request`,
        title: 'Invalid request',
        status: 400,
        detail: error.message,
        instance,
      },
    };
  }
  if (error instanceof NoServingConfigurationError) {
    return {
      problem: {
        type: `${TYPE}no-serving-configuration`,
        title: 'No configuration serves this workload',
        status: 422,
        detail: error.message,
        instance,
      },
    };
  }
  if (error instanceof PoolSaturatedError || error instanceof ComputationTimeoutError) {
    return {
      problem: {
        type: `${TYPE}unavailable`,
        title: 'Temporarily unavailable',
        status: 503,
        detail: error.message,
        instance,
      },
      headers: { 'retry-after': '5' },
    };
  }
  if (error instanceof ModelUnavailableError) {
    return {
      problem: {
        type: `${TYPE}model-unavailable`,
        title: 'No trained model',
        status: 503,
        detail: error.message,
        instance,
      },
    };
  }
  const fe = error as Partial<FastifyError>;
  if (fe.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
    return {
      problem: {
        type: `${TYPE}body-too-large`,
        title: 'Request body too large',
        status: 413,
        detail: fe.message ?? 'body too large',
        instance,
      },
    };
  }
  if (fe.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
    return {
      problem: {
        type: `${TYPE}unsupported-media-type`,
        title: 'Unsupported media type',
        status: 415,
        detail: 'send application/json',
        instance,
      },
    };
  }
  if (typeof fe.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500) {
    // Fastify's own client errors: malformed JSON, empty body, bad content length, rate limit.
    const status = fe.statusCode;
    const slug = status === 429 ? 'rate-limited' : 'invalid-request';
    const title = status === 429 ? 'Too many requests' : 'Invalid request';
    return {
      problem: { type: `${TYPE}${slug}`, title, status, detail: fe.message ?? title, instance },
    };
  }
  return {
    problem: {
      type: `${TYPE}internal`,
      title: 'Internal error',
      status: 500,
      detail: 'an unexpected error occurred; it has been logged',
      instance,
    },
  };
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
  Object.fromEntries(statuses.map((s) => [s, problemSchema.describe(DESCRIPTIONS[s] ?? 'Error')]));
const DESCRIPTIONS: Record<number, string> = {
  400: 'Invalid request: the problem names each offending field',
  404: 'Not found (an unknown profile lists the known ones)',
  413: 'Request body over the limit',
  422: 'No configuration on the candidate grid serves the workload; the detail says why',
  429: 'Rate limit exceeded',
  503: 'The twin worker pool is saturated or the computation timed out; retry after the Retry-After header',
};
