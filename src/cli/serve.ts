import { configFromEnv, startServer } from '../http/server.js';
import { parseOptions } from './options.js';

const USAGE = `usage: loraplan serve [--port N]

Serves the HTTP API (Swagger UI at /docs). Configuration by environment: PORT (8080), HOST (0.0.0.0),
LORAPLAN_DB (./data/loraplan.db), LORAPLAN_THREADS (cores), LORAPLAN_REQUEST_TIMEOUT_MS (60000), LORAPLAN_PLACEMENT_TIMEOUT_MS (900000),
LORAPLAN_MAX_QUEUE (256), LORAPLAN_RATE_LIMIT_PER_MINUTE (6000), LOG_LEVEL (info).`;

export async function serveCommand(argv: string[]): Promise<number> {
  const { values } = parseOptions(argv, { port: { type: 'string' } });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const config = configFromEnv(values.port ? { ...process.env, PORT: values.port } : process.env);
  await startServer(config);
  // Keep running until a signal closes the server.
  return new Promise<number>(() => {});
}
