// npm run bench [-- --quick]: times the twin (and, as they land, the search and the forest).
// Reports medians and ratios, never pass/fail: see docs/performance.md for recorded figures.
import { cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { DEFAULT_DATA_DIR } from '../validation/twin.js';
import { benchTwin } from './twin.js';

const { values } = parseArgs({ options: { quick: { type: 'boolean' }, data: { type: 'string' } } });
const dataDir = values.data ?? DEFAULT_DATA_DIR;
const s = (ms: number) => `${(ms / 1000).toFixed(3)} s`;

process.stdout.write(
  `machine: ${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}, node ${process.version}\n\n`,
);
const twin = benchTwin(dataDir, undefined, values.quick ? 40 : undefined);
process.stdout.write(
  [
    `## Twin on the validation runs (one thread, 3600 s windows)`,
    `| runs | median | p90 | max | simulated s per wall s |`,
    `|---|---|---|---|---|`,
    `| ${twin.runs} | ${s(twin.medianWallMs)} | ${s(twin.p90WallMs)} | ${s(twin.maxWallMs)} | ${Math.round(twin.simulatedSecondsPerWallSecond)} |`,
    ``,
    `slowest: ${twin.slowest}`,
    `heaviest offered load: ${twin.heaviest.run}: ${s(twin.heaviest.wallMs)}, ${twin.heaviest.engineSteps} engine steps, ${twin.heaviest.arrivedRequests} requests`,
    `published twin (Python, one HPC core): median 7.1 s, p90 107 s, max 242 s per 3600 s simulated`,
    '',
  ].join('\n'),
);
