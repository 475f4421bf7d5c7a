// --emit TARGET and the manifests' options, shared by `loraplan place` and `loraplan recommend`.
// The deploy module (schemas of every Kubernetes kind) loads only when --emit is given: a plain
// `recommend --json` stays as quick to start as before.
import { join } from 'node:path';
import type { DeploySet, DeployOptions } from '../deploy/index.js';
import { PACKAGE_ROOT } from '../profiles/store.js';
import { InputError, fieldIssues } from '../input/errors.js';

export const EMIT_OPTIONS = {
  emit: { type: 'string' },
  model: { type: 'string' },
  image: { type: 'string' },
  namespace: { type: 'string' },
  'adapter-source': { type: 'string' },
} as const;

export const EMIT_USAGE = `[--emit vllm|kubernetes|production-stack|kserve|aibrix
       [--model M --image I --namespace N --adapter-source '/adapters/{id}']]`;

/** --emit and its options, checked as GET /v1/runs/:id/deploy checks its query. */
export async function emitOptions(values: {
  emit?: string;
  model?: string;
  image?: string;
  namespace?: string;
  'adapter-source'?: string;
}): Promise<DeployOptions> {
  const { deployOptionsSchema } = await import('../deploy/index.js');
  const parsed = deployOptionsSchema.safeParse({
    target: values.emit,
    ...(values.model ? { model: values.model } : {}),
    ...(values.image ? { image: values.image } : {}),
    ...(values.namespace ? { namespace: values.namespace } : {}),
    ...(values['adapter-source'] ? { adapterSource: values['adapter-source'] } : {}),
  });
  if (!parsed.success) throw new InputError(fieldIssues(parsed.error, ['emit']));
  return parsed.data;
}

/** The manifests of a deploy set, each object validated against its schema. */
export async function emitted(set: DeploySet, options: DeployOptions): Promise<string> {
  const { emit } = await import('../deploy/index.js');
  return emit(set, options, join(PACKAGE_ROOT, 'models')).body;
}
