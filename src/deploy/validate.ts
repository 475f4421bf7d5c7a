import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv, type ValidateFunction } from 'ajv';
import { HTTPRoute } from '@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1/HTTPRoute';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { Pod } from 'kubernetes-models/v1/Pod';
import { Service } from 'kubernetes-models/v1/Service';
import { parse } from 'yaml';

/** One object that does not validate, with the schema's complaint. */
export class ManifestInvalidError extends Error {}

type Validator = (o: Record<string, unknown>) => void;

/** Built-in kinds and the Gateway API: the typed models of kubernetes-models, which validate. */
const BUILT_IN: Record<string, Validator> = {
  Deployment: (o) => new Deployment(o as never).validate(),
  Service: (o) => new Service(o as never).validate(),
  HTTPRoute: (o) => new HTTPRoute(o as never).validate(),
};

/** A CRD's openAPIV3Schema as an ajv validator (the CRD files in models/crds/, with their sources). */
function crdValidator(modelsDir: string, file: string): Validator {
  const crd = parse(readFileSync(join(modelsDir, 'crds', file), 'utf8')) as {
    spec: { versions: Array<{ name: string; schema: { openAPIV3Schema: object } }> };
  };
  const ajv = new Ajv({ strict: false, allErrors: true });
  for (const format of ['int32', 'int64', 'date-time']) ajv.addFormat(format, true);
  const check: ValidateFunction = ajv.compile(crd.spec.versions[0]!.schema.openAPIV3Schema);
  return (o) => {
    if (!check(o))
      throw new ManifestInvalidError(
        (check.errors ?? [])
          .map((e) => `${e.instancePath || '(root)'} ${e.message ?? ''}`)
          .join('; '),
      );
  };
}

/** Validates every emitted object against its kind's schema; throws naming the first invalid one. */
export function validateObjects(
  objects: ReadonlyArray<Record<string, unknown>>,
  modelsDir: string,
): void {
  const custom: Record<string, () => Validator> = {
    LoraAdapter: () => crdValidator(modelsDir, 'production-stack-loraadapter.yaml'),
    ModelAdapter: () => crdValidator(modelsDir, 'aibrix-modeladapter.yaml'),
    InferenceService: () => {
      const crd = crdValidator(modelsDir, 'kserve-inferenceservice.yaml');
      // The predictor's containers are corev1.Containers (KServe inlines a PodSpec there).
      return (o) => {
        crd(o);
        const predictor = (o.spec as { predictor: { containers?: unknown[] } }).predictor;
        new Pod({
          metadata: { name: 'predictor' },
          spec: { containers: (predictor.containers ?? []) as never },
        }).validate();
      };
    },
  };
  const made = new Map<string, Validator>();
  for (const o of objects) {
    const kind = String(o.kind);
    if (kind === 'HelmValues') continue; // the chart's values carry no schema of their own
    const validator = BUILT_IN[kind] ?? made.get(kind) ?? custom[kind]?.();
    if (!validator) throw new ManifestInvalidError(`no schema known for kind ${kind}`);
    made.set(kind, validator);
    try {
      validator(o);
    } catch (e) {
      const name = (o.metadata as { name?: string } | undefined)?.name ?? '?';
      throw new ManifestInvalidError(`${kind} ${name}: ${(e as Error).message}`);
    }
  }
}
