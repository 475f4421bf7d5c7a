/** Only the parts of an OpenAPI document this rewrite touches. */
interface Operation {
  responses?: Record<string, { content?: Record<string, unknown> }>;
}
type Document = { paths?: Record<string, Record<string, Operation>> };

/**
 * Error responses are RFC 9457 bodies sent as application/problem+json; the schema generator
 * labels every response application/json, so error statuses are relabelled here.
 */
export function problemContentTypes<T>(doc: T): T {
  const paths = (doc as Document).paths ?? {};
  for (const operations of Object.values(paths))
    for (const operation of Object.values(operations))
      for (const [status, response] of Object.entries(operation.responses ?? {})) {
        const content = response.content;
        if (Number(status) < 400 || !content?.['application/json']) continue;
        content['application/problem+json'] = content['application/json'];
        delete content['application/json'];
      }
  return doc;
}
