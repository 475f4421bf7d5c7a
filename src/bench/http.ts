// npm run bench:http: starts the service on a free local port and drives it with autocannon:
// method=model recommendations, and cached twin answers (method=twin, after one warm-up). The
// load runs on a worker thread of its own (`--workers 0`: on the service's thread, as it did
// before 2026-12-03), so the service's event loop does not also run the client's.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { buildApp } from '../http/app.js';
import { ServiceCore } from '../service/core.js';
import { openDatabase } from '../storage/db.js';

const LLAMA = 'h100-64gb/llama-3.1-8b-instruct';
const { values } = parseArgs({
  options: {
    connections: { type: 'string', default: '10' },
    workers: { type: 'string', default: '1' },
  },
});
const connections = Number(values.connections);
const workers = Number(values.workers);
const db = openDatabase(join(mkdtempSync(join(tmpdir(), 'loraplan-bench-')), 'bench.db'));
const core = new ServiceCore({ db });
const app = await buildApp({ core, rateLimitPerMinute: 100_000_000 });
await app.listen({ port: 0, host: '127.0.0.1' });
const address = app.server.address();
const url = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;

async function drive(title: string, body: unknown, seconds = 10) {
  const result = await autocannon({
    url: `${url}/v1/recommend`,
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
    connections,
    duration: seconds,
    ...(workers > 0 ? { workers } : {}),
  });
  const non2xx = result.non2xx + result.errors;
  process.stdout.write(
    `| ${title} | ${Math.round(result.requests.average)} | ${result.latency.p50} ms | ${result.latency.p99} ms | ${non2xx} |\n`,
  );
}

const workload = { rates: [0.1, 0.05, 0.025], ranks: [8, 16] };
process.stdout.write(
  `| load (${connections} connections, 10 s, ${workers > 0 ? `client on ${workers} worker thread(s)` : "client on the service's thread"}) | req/s | p50 | p99 | errors |\n|---|---|---|---|---|\n`,
);
await drive('POST /v1/recommend method=model', { profile: LLAMA, workload, method: 'model' });
const twinBody = {
  profile: LLAMA,
  workload,
  method: 'twin',
  search: { concurrent: [16, 32, 64, 128], parallel: [8, 16, 32] },
};
const t = performance.now();
await app.inject({ method: 'POST', url: '/v1/recommend', payload: twinBody });
const coldMs = performance.now() - t;
await drive('POST /v1/recommend method=twin, cached', twinBody);
const autoBody = { profile: LLAMA, workload: { rates: [0.3, 0.07], ranks: [16] }, method: 'auto' };
const a = performance.now();
const auto = await app.inject({ method: 'POST', url: '/v1/recommend', payload: autoBody });
process.stdout.write(
  `\ncold twin search (4 x 3 grid): ${(coldMs / 1000).toFixed(2)} s; auto for a new workload: ${((performance.now() - a) / 1000).toFixed(2)} s (status ${auto.statusCode})\n`,
);

// Charts while the service must stay live: 25 recommend runs with twin-evaluated pairs, their
// charts requested all at once (each drawn for the first time) while /healthz is polled.
const chartRuns: string[] = [];
for (let i = 0; i < 25; i++) {
  const res = await app.inject({
    method: 'POST',
    url: '/v1/recommend',
    payload: twinBody, // the twin's results are cached; each answer is a run of its own
  });
  chartRuns.push((res.json() as { runId: string }).runId);
}
const health: number[] = [];
let rendering = true;
const poll = (async () => {
  while (rendering) {
    const s = performance.now();
    await fetch(`${url}/healthz`);
    health.push(performance.now() - s);
  }
})();
const c0 = performance.now();
await Promise.all(
  chartRuns.map((id) => fetch(`${url}/v1/runs/${id}/chart.svg`).then((r) => r.text())),
);
const chartsMs = performance.now() - c0;
await new Promise((r) => setTimeout(r, 50));
rendering = false;
await poll;
health.sort((x, y) => x - y);
process.stdout.write(
  `25 charts drawn for the first time, concurrently: ${chartsMs.toFixed(0)} ms in all; /healthz meanwhile: ${health.length} calls, p50 ${health[health.length >> 1]!.toFixed(1)} ms, p99 ${health[Math.floor(health.length * 0.99)]!.toFixed(1)} ms\n`,
);

// A megabyte re-placement while the service must stay live: 10,000 adapters, each passed back on
// the GPU it runs on (the largest body the service takes), while /healthz is polled every 20 ms.
// Was a timed test (test/stall.test.ts); a latency is a benchmark's figure, not an assertion.
{
  const ids = Array.from(
    { length: 10_000 },
    (_, i) => `tenant-${String(i).padStart(5, '0')}-customer-support-lora`,
  );
  const catalog = ids.map((id, i) => ({ id, rate: 0.001, rank: [8, 16, 32, 64][i % 4]! }));
  const current = Array.from({ length: 20 }, (_, g) => ({
    id: `node-${g}`,
    adapters: ids.filter((_, i) => i % 20 === g),
  }));
  const body = JSON.stringify({ profile: LLAMA, catalog, current });
  const post = (payload: string) =>
    fetch(`${url}/v1/placement`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: payload,
    });
  // The other model first: a process's first megabyte placement compiles code once.
  await (await post(body.replace(LLAMA, 'h100-64gb/qwen-2.5-7b-instruct'))).text();
  let placing = true;
  const p0 = performance.now();
  const placement = post(body).finally(() => (placing = false));
  const polls: number[] = [];
  while (placing) {
    const s = performance.now();
    await fetch(`${url}/healthz`);
    polls.push(performance.now() - s);
    await new Promise((r) => setTimeout(r, 20));
  }
  const status = (await placement).status;
  const placeMs = performance.now() - p0;
  polls.sort((x, y) => x - y);
  process.stdout.write(
    `1 MiB re-placement (10,000 adapters on 20 GPUs, status ${status}): ${(placeMs / 1000).toFixed(1)} s; /healthz meanwhile: ${polls.length} calls, p50 ${polls[polls.length >> 1]!.toFixed(1)} ms, max ${polls[polls.length - 1]!.toFixed(1)} ms\n`,
  );
}
await app.close();
await core.close();
db.close();
