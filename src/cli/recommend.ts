import { readFileSync } from 'node:fs';
import { InputError, fieldIssues } from '../input/errors.js';
import { localRecommender } from '../runtime/local.js';
import {
  NoServingConfigurationError,
  recommendRequestSchema,
  type RecommendResponse,
} from '../recommend/index.js';
import type { DeployOptions } from '../deploy/index.js';
import { EMIT_OPTIONS, emitOptions, emitted, EMIT_USAGE } from './emit.js';
import { parseOptions, UsageError } from './options.js';

const USAGE = `usage: loraplan recommend --file W.json [--json] [--url http://host:8080]
       ${EMIT_USAGE}

W.json: { profile, workload: { rates, ranks, requestLengths? }, method?: "model" | "twin" | "auto",
          search?: { concurrent?: number[], parallel?: number[] }, starvationThreshold?, slo?: { ttftP99Ms?, itlP99Ms? },
          objective?: "paper" | "stable" }
Prints a readable table, or with --json the response object, or with --emit the recommended server
as manifests for that target (docs/deploy.md; its adapters are adapter-0, adapter-1, ...: a
workload names none). Exit 0 with a recommendation, 1 when no configuration serves the workload,
2 for an error in the input.`;

export function renderTable(r: RecommendResponse): string {
  const rec = r.recommendation;
  const lines = [
    `recommendation (${r.method})`,
    `  --max-cpu-loras (concurrent adapters)  ${rec.concurrentAdapters}`,
    `  --max-loras     (parallel adapters)    ${rec.parallelAdapters}`,
    `  --max-lora-rank                        ${rec.maxLoraRank}`,
    `  throughput                             ${Math.round(rec.throughputTokensPerSecond)} tok/s of ${Math.round(rec.offeredTokensPerSecond)} offered${rec.starving ? ' (STARVING)' : ''}`,
    `  vllm serve ... ${r.vllmArgs.join(' ')}`,
  ];
  const ms = (v: number) => (v >= 10_000 ? `${(v / 1000).toFixed(1)} s` : `${Math.round(v)} ms`);
  if (rec.latency) {
    const { ttftMs, itlMs } = rec.latency;
    lines.push(
      `  p99 TTFT                               ${ms(ttftMs.p99.ms)} (${ms(ttftMs.p99.lowMs)}-${ms(ttftMs.p99.highMs)}; 90% bound ${ms(ttftMs.p99.sloMs)})`,
      `  p99 ITL                                ${ms(itlMs.p99.ms)} (${ms(itlMs.p99.lowMs)}-${ms(itlMs.p99.highMs)}; 90% bound ${ms(itlMs.p99.sloMs)})`,
    );
  }
  const h = rec.headroom;
  lines.push(
    `  headroom                               ${h.percent === null ? 'no load to grow' : `${h.atLeast ? 'at least ' : ''}${h.percent}% more traffic before it starves (${h.method})`}`,
  );
  if (rec.binding)
    lines.push(
      `  binding limit                          ${rec.binding.limit}: ${rec.binding.detail}`,
    );
  for (const w of rec.warnings) lines.push(`  WARNING: ${w}`);
  lines.push('', r.explanation.summary);
  if (r.explanation.featureEffects?.length) {
    lines.push('', 'features that moved this answer (log2 change vs the training median):');
    for (const e of r.explanation.featureEffects) {
      lines.push(
        `  ${e.feature.padEnd(18)} = ${Number(e.value.toPrecision(4))}  concurrent ${e.concurrentLog2Effect >= 0 ? '+' : ''}${e.concurrentLog2Effect.toFixed(2)}  parallel ${e.parallelLog2Effect >= 0 ? '+' : ''}${e.parallelLog2Effect.toFixed(2)}`,
      );
    }
  }
  const simulated = r.evaluated.filter((e) => e.simulated);
  if (simulated.length) {
    lines.push(
      '',
      'evaluated with the twin:',
      '  concurrent parallel   throughput     offered  verdict',
    );
    for (const e of simulated) {
      const verdict = !e.feasible
        ? 'infeasible'
        : e.starving
          ? 'starves'
          : e.sloViolated
            ? 'breaks SLO'
            : 'serves';
      const chosen =
        e.concurrentAdapters === rec.concurrentAdapters &&
        e.parallelAdapters === rec.parallelAdapters
          ? '  <- chosen'
          : '';
      lines.push(
        `  ${String(e.concurrentAdapters).padStart(10)} ${String(e.parallelAdapters).padStart(8)} ${Math.round(e.throughputTokensPerSecond).toString().padStart(12)} ${Math.round(e.offeredTokensPerSecond).toString().padStart(11)}  ${verdict}${chosen}`,
      );
    }
  }
  return lines.join('\n');
}

interface Output {
  json: boolean;
  deploy: DeployOptions | undefined;
}

async function print(response: RecommendResponse, profile: string, out: Output): Promise<void> {
  if (out.deploy) {
    const { fromRecommendation } = await import('../deploy/index.js');
    process.stdout.write(await emitted(fromRecommendation(response, profile), out.deploy));
    return;
  }
  process.stdout.write(out.json ? `${JSON.stringify(response)}\n` : `${renderTable(response)}\n`);
}

async function recommendRemote(url: string, body: unknown, out: Output): Promise<number> {
  const res = await fetch(new URL('/v1/recommend', url), {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const answer = (await res.json()) as RecommendResponse & { detail?: string; profile: string };
  if (res.status === 422) {
    process.stderr.write(
      `loraplan recommend: no configuration serves this workload: ${answer.detail ?? ''}\n`,
    );
    return 1;
  }
  if (!res.ok) throw new UsageError(`${res.status}: ${answer.detail ?? res.statusText}`);
  const { recommendation, vllmArgs, method, objective, explanation, evaluated } = answer;
  const response: RecommendResponse = {
    recommendation,
    vllmArgs,
    method,
    objective,
    explanation,
    evaluated,
  };
  await print(response, answer.profile, out);
  return 0;
}

export async function recommendCommand(argv: string[]): Promise<number> {
  const { values } = parseOptions(argv, {
    file: { type: 'string' },
    json: { type: 'boolean' },
    url: { type: 'string' },
    ...EMIT_OPTIONS,
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (!values.file) throw new UsageError(`--file is required\n${USAGE}`);
  const body = JSON.parse(readFileSync(values.file, 'utf8')) as unknown;
  const out = {
    json: values.json === true,
    deploy: values.emit ? await emitOptions(values) : undefined,
  };
  if (values.url) return recommendRemote(values.url, body, out);
  const parsed = recommendRequestSchema.safeParse(body);
  if (!parsed.success) throw new InputError(fieldIssues(parsed.error));
  const local = localRecommender();
  try {
    const response = await local.recommender.recommend(parsed.data);
    await print(response, parsed.data.profile, out);
    return 0;
  } catch (e) {
    if (e instanceof NoServingConfigurationError) {
      process.stderr.write(
        `loraplan recommend: no configuration serves this workload: ${e.message}\n`,
      );
      return 1;
    }
    throw e;
  } finally {
    await local.close();
  }
}
