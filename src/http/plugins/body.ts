import type { FastifyInstance, FastifyReply } from 'fastify';
import { InputError, type FieldIssue } from '../../runtime/errors.js';
import { problem } from '../problems.js';

/** Keys that reach an object's prototype when a consumer merges the body naively. */
const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

/** Paths of forbidden keys anywhere in a parsed body, named the way field errors are. */
export function forbiddenKeyIssues(value: unknown, path = 'body'): FieldIssue[] {
  if (Array.isArray(value)) return value.flatMap((v, i) => forbiddenKeyIssues(v, `${path}[${i}]`));
  if (value === null || typeof value !== 'object') return [];
  return Object.keys(value).flatMap((key) => [
    ...(FORBIDDEN_KEYS.has(key)
      ? [{ field: `${path}.${key}`, message: 'this key is not accepted (it names a prototype)' }]
      : []),
    ...forbiddenKeyIssues((value as Record<string, unknown>)[key], `${path}.${key}`),
  ]);
}

/**
 * Bodies are JSON and only JSON: other media types get 415 rather than a parse or validation
 * error, a Content-Encoding the service does not decode gets 415 rather than being read as plain
 * JSON, and prototype keys are named as fields (400) rather than reported as invalid JSON.
 */
export function jsonBodies(app: FastifyInstance, bodyLimit: number): void {
  app.removeAllContentTypeParsers();
  app.addContentTypeParser(
    'application/json',
    { parseAs: 'string', bodyLimit },
    (_req, body, done) => {
      const text = String(body);
      if (text.trim() === '')
        return done(
          problem(
            400,
            'invalid-request',
            'Invalid request',
            'the body is empty; send a JSON object',
          ),
          undefined,
        );
      let value: unknown;
      try {
        // JSON.parse makes "__proto__" an own property, never the prototype: safe to inspect.
        value = JSON.parse(text);
      } catch (e) {
        return done(
          problem(
            400,
            'invalid-request',
            'Invalid request',
            `the body is not valid JSON: ${(e as Error).message}`,
          ),
          undefined,
        );
      }
      const issues = forbiddenKeyIssues(value);
      if (issues.length) return done(new InputError(issues), undefined);
      done(null, value);
    },
  );
  app.addContentTypeParser('*', (request, _payload, done) =>
    done(
      problem(
        415,
        'unsupported-media-type',
        'Unsupported media type',
        `bodies must be application/json, not ${request.headers['content-type'] ?? 'an unnamed type'}`,
      ),
      undefined,
    ),
  );
  app.addHook('onRequest', (request, _reply, done) => {
    const encoding = request.headers['content-encoding'];
    if (encoding === undefined || encoding.trim().toLowerCase() === 'identity') return done();
    done(
      problem(
        415,
        'unsupported-media-type',
        'Unsupported media type',
        `Content-Encoding "${encoding}" is not supported; send the JSON body uncompressed`,
      ),
    );
  });
}

/**
 * A signal that aborts when the client closes the connection before its answer was written, so
 * twin work nobody will read is dropped.
 */
export function clientGone(reply: FastifyReply): AbortSignal {
  const controller = new AbortController();
  reply.raw.once('close', () => {
    if (!reply.raw.writableFinished) controller.abort();
  });
  return controller.signal;
}
