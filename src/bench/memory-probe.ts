// One overloaded hour in a fresh process; prints arrivals and peak resident memory (bench/service.ts).
import { resourceUsage } from 'node:process';
import { runScenario } from '../runtime/scenario-runner.js';
import { scenarioSchema } from '../twin/index.js';

const rate = Number(process.argv[2]);
const result = runScenario(
  scenarioSchema.parse({
    profile: 'h100-64gb/llama-3.1-8b-instruct',
    config: { maxLoras: 8, maxCpuLoras: 8, maxLoraRank: 16 },
    workload: { rates: [rate], ranks: [16] },
    durationSeconds: 3600,
  }),
);
process.stdout.write(
  JSON.stringify({
    rate,
    arrived: result.arrivedRequests,
    maxRssMb: resourceUsage().maxRSS / 1024,
  }),
);
