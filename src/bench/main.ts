// npm run bench [-- --quick --only cases|forest|search|slo|twin|memory|runs]: times the twin, the search,
// the forest and recommendations under an SLO. Reports medians and ratios, never pass/fail:
// docs/performance.md records the figures.
import { cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { DEFAULT_DATA_DIR } from '../validation/twin.js';
import { benchForest, benchRecommend, benchSearch, datasetCost } from './recommend.js';
import { runListing, simulationMemory } from './service.js';
import { benchTwin, benchTwinCases } from './twin.js';

const { values } = parseArgs({
  options: { quick: { type: 'boolean' }, data: { type: 'string' }, only: { type: 'string' } },
});
const dataDir = values.data ?? DEFAULT_DATA_DIR;
const s = (ms: number) => `${(ms / 1000).toFixed(3)} s`;
const out = (line = '') => process.stdout.write(`${line}\n`);
const PROFILES = ['h100-64gb/llama-3.1-8b-instruct', 'h100-64gb/qwen-2.5-7b-instruct'];

out(`machine: ${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}, node ${process.version}`);
out();

if (!values.only || values.only === 'cases') {
  out(
    "## The twin against the published one (issue 27's cases, 3600 s, one thread, median of 7 interleaved rounds)",
  );
  out('| case | workload | published twin | loraplan | ratio | engine steps | requests |');
  out('|---|---|---|---|---|---|---|');
  for (const c of benchTwinCases(values.quick ? 1 : 7)) {
    out(
      `| ${c.id} | ${c.label} | ${c.publishedSeconds.toFixed(1)} s | ${s(c.medianWallMs)} | ${c.ratio.toFixed(0)}x | ${c.engineSteps} | ${c.arrivedRequests} |`,
    );
  }
  out();
}

if (!values.only || values.only === 'forest') {
  out('## Forest prediction (features + three forests, one workload, this thread)');
  out(
    '| profile | predictions | median | p99 | model load | explanation | the same, each moved row walked from the root |',
  );
  out('|---|---|---|---|---|---|---|');
  for (const p of PROFILES) {
    const f = benchForest(p);
    out(
      `| ${p} | ${f.predictions} | ${(f.medianMs * 1000).toFixed(1)} µs | ${(f.p99Ms * 1000).toFixed(1)} µs | ${f.loadMs.toFixed(0)} ms | ${(f.explanationMedianMs * 1000).toFixed(1)} µs | ${(f.walkedPerRowMedianMs * 1000).toFixed(1)} µs |`,
    );
  }
  out('published follow-up: 0.3 ms per prediction');
  out();
}

if (!values.only || values.only === 'search') {
  out('## Twin search over the 10 x 10 measured grid (3600 s windows, all cores)');
  out('| profile | workload | start | wall time | simulations | optimum |');
  out('|---|---|---|---|---|---|');
  for (const p of PROFILES) {
    for (const rates of [
      [0.1, 0.05, 0.025],
      [1.6, 0.8, 0.4],
    ]) {
      for (const fromForest of [false, true]) {
        const r = await benchSearch(p, rates, [8, 16], fromForest);
        out(
          `| ${p} | rates ${rates.join('/')} | ${fromForest ? "near the forest's answer" : 'cold'} | ${s(r.wallMs)} | ${r.simulations} | ${r.best} |`,
        );
      }
    }
  }
  out();
  out("## Cost of the training sets (from the rows' own timings)");
  // Two workloads are searched at a time on the 2 cores, so the sum of their search times is about
  // the core-hours spent (comparable to CPU-hours); the elapsed time is about half.
  out('| profile | workloads | simulations | core-hours (sum of search times) |');
  out('|---|---|---|---|');
  for (const p of PROFILES) {
    const c = datasetCost(p);
    out(`| ${p} | ${c.workloads} | ${c.simulations} | ${c.coreHours.toFixed(2)} |`);
  }
  out('published: 767 CPU-hours for 75,480 simulations');
  out();
}

if (!values.only || values.only === 'slo') {
  out('## Recommendations with and without an SLO (method auto, default grid, cold, all cores)');
  out(
    '| profile | workload | SLO | wall time, fresh threads | wall time, warmed threads (as the service after start-up) | simulated pairs | pair | tok/s |',
  );
  out('|---|---|---|---|---|---|---|---|');
  const workloads = [
    [PROFILES[0]!, [0.4, 0.05, 0.0125], [8, 16, 16]],
    [PROFILES[1]!, [0.1, 0.05, 0.025], [8, 16]],
    [PROFILES[0]!, [1.6, 0.8, 0.4], [8, 16]],
    [PROFILES[1]!, [0.8, 0.2, 0.05], [8, 32]],
  ] as const;
  const slos = [undefined, { itlP99Ms: 200 }, { ttftP99Ms: 5000 }];
  for (const [profile, rates, ranks] of workloads)
    for (const slo of slos) {
      const request = {
        profile,
        workload: { rates: [...rates], ranks: [...ranks] },
        method: 'auto' as const,
        ...(slo ? { slo } : {}),
      };
      const r = await benchRecommend(request);
      const warmed = await benchRecommend(request, { warmUp: true });
      const label = slo
        ? Object.entries(slo)
            .map(([k, v]) => `${k} ${v}`)
            .join(', ')
        : 'none';
      out(
        `| ${profile} | rates ${rates.join('/')} | ${label} | ${s(r.wallMs)} | ${s(warmed.wallMs)} | ${r.evaluated} | ${r.pair}${warmed.pair === r.pair ? '' : ` (warmed: ${warmed.pair})`} | ${Math.round(r.throughput)} |`,
      );
    }
  out();
}

if (!values.only || values.only === 'twin') {
  const twin = benchTwin(dataDir, undefined, values.quick ? 40 : undefined);
  out('## Twin on the validation runs (one thread, 3600 s windows)');
  out('| runs | median | p90 | max | runs under 1 s | simulated s per wall s |');
  out('|---|---|---|---|---|---|');
  out(
    `| ${twin.runs} | ${s(twin.medianWallMs)} | ${s(twin.p90WallMs)} | ${s(twin.maxWallMs)} | ${twin.under1s} | ${Math.round(twin.simulatedSecondsPerWallSecond)} |`,
  );
  out();
  out(`slowest: ${twin.slowest}`);
  out(
    `heaviest offered load: ${twin.heaviest.run}: ${s(twin.heaviest.wallMs)}, ${twin.heaviest.engineSteps} engine steps, ${twin.heaviest.arrivedRequests} requests`,
  );
  out(
    'published twin (Python, one HPC core): median 7.1 s, p90 107 s, max 242 s per 3600 s simulated',
  );
}

if (!values.only || values.only === 'memory') {
  out('## Memory of one simulation (fresh process, 8 adapters x 8 slots overloaded for an hour)');
  out('| rate per adapter (req/s) | arrived requests | peak RSS |');
  out('|---|---|---|');
  const probes = simulationMemory([0.01, 35, 140]);
  for (const p of probes) out(`| ${p.rate} | ${p.arrived} | ${p.maxRssMb.toFixed(0)} MB |`);
  const [light, , heavy] = probes;
  const perRequest =
    ((heavy!.maxRssMb - light!.maxRssMb) * 1024 * 1024) / (heavy!.arrived - light!.arrived);
  out(
    `about ${perRequest.toFixed(0)} bytes per arrived request over a ${light!.maxRssMb.toFixed(0)} MB process: the limit of 10,000,000 arrivals bounds one simulation near ${((light!.maxRssMb * 1024 * 1024 + perRequest * 1e7) / 1e9).toFixed(2)} GB`,
  );
  out();
}

if (!values.only || values.only === 'runs') {
  out('## Listing stored runs (GET /v1/runs pages of 200, summaries only)');
  const r = await runListing(values.quick ? 10_000 : 100_000);
  out(
    '| stored runs | database | first page, median (p99) | page 101, median | filtered by kind and profile, median |',
  );
  out('|---|---|---|---|---|');
  out(
    `| ${r.count} | ${r.dbMb.toFixed(0)} MB | ${r.firstPageMedianMs.toFixed(2)} ms (${r.firstPageP99Ms.toFixed(2)} ms) | ${r.deepPageMedianMs.toFixed(2)} ms | ${r.filteredMedianMs.toFixed(2)} ms |`,
  );
  out();
}
