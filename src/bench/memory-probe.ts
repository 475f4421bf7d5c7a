// One overloaded hour in a fresh process; prints arrivals and peak resident memory (bench/service.ts).
import { readFileSync } from 'node:fs';
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
/**
 * Peak resident memory of this process alone. Linux keeps getrusage's maxRSS across fork and
 * exec, so a probe spawned by a bench that had grown to 460 MB reported 460 MB whatever it did;
 * VmHWM belongs to the address space, which exec replaces.
 */
function peakRssMb(): number {
  try {
    const hwm = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync('/proc/self/status', 'utf8'));
    if (hwm) return Number(hwm[1]) / 1024;
  } catch {
    // Not Linux: maxRSS is the best there is.
  }
  return resourceUsage().maxRSS / 1024;
}

process.stdout.write(
  JSON.stringify({ rate, arrived: result.arrivedRequests, maxRssMb: peakRssMb() }),
);
