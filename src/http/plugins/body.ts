import type { FastifyInstance, FastifyReply } from 'fastify';
import { InputError, type FieldIssue } from '../../input/errors.js';
import { problem } from '../problems.js';

/** Keys that reach an object's prototype when a consumer merges the body naively. */
const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

/**
 * Paths of forbidden keys anywhere in a parsed body, named the way field errors are. The path is
 * spelled out only for a key that is found: a megabyte body is walked without building a string
 * per value.
 */
export function forbiddenKeyIssues(value: unknown, root = 'body'): FieldIssue[] {
  const issues: FieldIssue[] = [];
  const path: Array<string | number> = [];
  const spelled = () =>
    root + path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${p}`)).join('');
  const walk = (v: unknown): void => {
    if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) {
        path.push(i);
        walk(v[i]);
        path.pop();
      }
      return;
    }
    if (v === null || typeof v !== 'object') return;
    for (const key of Object.keys(v)) {
      path.push(key);
      if (FORBIDDEN_KEYS.has(key))
        issues.push({
          field: spelled(),
          message: 'this key is not accepted (it names a prototype)',
        });
      walk((v as Record<string, unknown>)[key]);
      path.pop();
    }
  };
  walk(value);
  return issues;
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
      // A megabyte body is parsed on this turn and checked against its schema on the next.
      setImmediate(() => done(null, value));
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
