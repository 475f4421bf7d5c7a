import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { PACKAGE_ROOT } from '../profiles/store.js';
import { placementRequestSchema, zipfCatalog } from '../placement/index.js';
import { DEFAULT_PLACEMENT_TIMEOUT_MS, ServiceCore } from '../service/core.js';
import { openDatabase } from '../storage/db.js';

/**
 * npm run bench:placement:concurrent: what a 10,000-adapter placement costs through the service's
 * core (one worker pool, one cache, the placement limit) alone and with two others at once, each
 * catalog distinct and every cache cold. Writes docs/placement/concurrent.md: each placement's
 * wall time against the limit that would answer it 503 (LORAPLAN_PLACEMENT_TIMEOUT_MS).
 * `--adapters N` and `--profile P` change the case.
 */
const MEAN_RATE = 0.2;

async function placeAll(profile: string, adapters: number, seeds: number[]) {
  // No limit here: the bench measures how long each takes, the limit is compared after.
  const core = new ServiceCore({ db: openDatabase(':memory:'), placementTimeoutMs: 86_400_000 });
  try {
    const t0 = performance.now();
    return await Promise.all(
      seeds.map(async (seed) => {
        const request = placementRequestSchema.parse({
          profile,
          catalog: zipfCatalog({ adapters, meanRate: MEAN_RATE, seed }),
        });
        const { response } = await core.place(request);
        return { seed, seconds: (performance.now() - t0) / 1000, gpus: response.gpus.length };
      }),
    );
  } finally {
    await core.close();
  }
}

async function main() {
  const { values } = parseArgs({
    options: {
      adapters: { type: 'string', default: '10000' },
      profile: { type: 'string', default: 'h100-64gb/llama-3.1-8b-instruct' },
    },
  });
  const adapters = Number(values.adapters);
  const limitS = DEFAULT_PLACEMENT_TIMEOUT_MS / 1000;
  const alone = await placeAll(values.profile, adapters, [101]);
  const together = await placeAll(values.profile, adapters, [102, 103, 104]);
  const rows = [
    ...alone.map((r) => ({ ...r, at: 1 })),
    ...together.map((r) => ({ ...r, at: 3 })),
  ].map(
    (r) =>
      `| ${r.at} | ${r.seed} | ${r.gpus} | ${r.seconds.toFixed(1)} | ${(r.seconds / limitS).toFixed(2)} | ${r.seconds < limitS ? 'answered' : '503'} |`,
  );
  const table = [
    `<!-- written by npm run bench:placement:concurrent -- --adapters ${adapters} on ${new Date().toISOString().slice(0, 10)} -->`,
    '',
    `${values.profile}, ${adapters} adapters (Zipf, ${MEAN_RATE} req/s each on average), cold cache, one service core on this machine's cores. Seconds from the first request to each answer; the limit is LORAPLAN_PLACEMENT_TIMEOUT_MS's default, ${limitS} s.`,
    '',
    '| placements at once | catalog seed | GPUs | seconds | of the limit | with the default limit |',
    '|---:|---:|---:|---:|---:|---|',
    ...rows,
    '',
  ].join('\n');
  const dir = join(PACKAGE_ROOT, 'docs', 'placement');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'concurrent.md'), table);
  process.stdout.write(table);
}

await main();
