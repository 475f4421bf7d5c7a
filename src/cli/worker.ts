import { availableParallelism } from 'node:os';
import { SimulationPool } from '../runtime/pool.js';
import { startQueueWorker } from '../runtime/queue.js';
import { intOption, parseOptions, UsageError } from './options.js';

const USAGE = `usage: loraplan worker [--redis redis://host:6379] [--concurrency N] [--name NAME]

Runs twin simulations queued by loraplan services started with LORAPLAN_REDIS_URL (the same
Redis): N at a time (default: the machine's cores), each on a worker thread. --redis defaults to
LORAPLAN_REDIS_URL. SIGTERM or SIGINT finishes the jobs in hand, then exits; a worker killed
outright has its jobs retried by another worker once their lock lapses
(LORAPLAN_QUEUE_LOCK_MS, 30000).`;

export async function workerCommand(argv: string[]): Promise<number> {
  const { values } = parseOptions(argv, {
    redis: { type: 'string' },
    concurrency: { type: 'string' },
    name: { type: 'string' },
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const url = values.redis ?? process.env.LORAPLAN_REDIS_URL;
  if (!url) throw new UsageError(`give --redis or set LORAPLAN_REDIS_URL\n${USAGE}`);
  const concurrency = intOption(values.concurrency, '--concurrency') ?? availableParallelism();
  const lockMs = intOption(process.env.LORAPLAN_QUEUE_LOCK_MS, 'LORAPLAN_QUEUE_LOCK_MS');
  const worker = startQueueWorker(url, {
    concurrency,
    pool: new SimulationPool({ threads: concurrency }),
    ...(values.name ? { name: values.name } : {}),
    ...(lockMs ? { lockMs } : {}),
  });
  await worker.worker.waitUntilReady();
  process.stderr.write(`loraplan worker ${worker.name}: ${concurrency} at a time from ${url}\n`);
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
  await worker.close();
  return 0;
}
