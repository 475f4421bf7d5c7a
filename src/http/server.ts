import { pino } from 'pino';
import { DEFAULT_PLACEMENT_TIMEOUT_MS, ServiceCore } from '../service/core.js';
import { openDatabase } from '../storage/db.js';
import { startRetention, type RetentionPolicy } from '../storage/runs.js';
import { buildApp } from './app.js';

/** Configuration by environment (documented in the README). */
export interface ServerConfig {
  port: number;
  host: string;
  dbPath: string;
  threads?: number;
  requestTimeoutMs: number;
  placementTimeoutMs: number;
  /** Set: simulations become BullMQ jobs on this Redis, run by `loraplan worker` processes. */
  redisUrl?: string;
  maxQueue: number;
  rateLimitPerMinute: number;
  logLevel: string;
  retention: RetentionPolicy;
  retentionIntervalMs: number;
  /** Warm the twin's threads after start-up, so the first request runs at full speed. */
  warmUp: boolean;
}

export function configFromEnv(env: NodeJS.ProcessEnv = process.env): ServerConfig {
  const int = (name: string, fallback: number) => {
    const v = env[name];
    if (v === undefined || v === '') return fallback;
    const n = Number(v);
    if (!Number.isInteger(n) || n <= 0)
      throw new Error(`${name} must be a positive integer, got "${v}"`);
    return n;
  };
  return {
    port: env.PORT === undefined ? 8080 : int('PORT', 8080),
    host: env.HOST ?? '0.0.0.0',
    dbPath: env.LORAPLAN_DB ?? './data/loraplan.db',
    ...(env.LORAPLAN_THREADS ? { threads: int('LORAPLAN_THREADS', 2) } : {}),
    requestTimeoutMs: int('LORAPLAN_REQUEST_TIMEOUT_MS', 60_000),
    placementTimeoutMs: int('LORAPLAN_PLACEMENT_TIMEOUT_MS', DEFAULT_PLACEMENT_TIMEOUT_MS),
    ...(env.LORAPLAN_REDIS_URL ? { redisUrl: env.LORAPLAN_REDIS_URL } : {}),
    maxQueue: int('LORAPLAN_MAX_QUEUE', 256),
    rateLimitPerMinute: int('LORAPLAN_RATE_LIMIT_PER_MINUTE', 6000),
    logLevel: env.LOG_LEVEL ?? 'info',
    retention: {
      maxAgeDays: int('LORAPLAN_RUN_RETENTION_DAYS', 30),
      maxRows: int('LORAPLAN_RUN_MAX_ROWS', 100_000),
    },
    retentionIntervalMs: int('LORAPLAN_RUN_RETENTION_INTERVAL_MS', 600_000),
    warmUp: env.LORAPLAN_WARM_UP !== '0',
  };
}

/** Starts the service; resolves once it listens. SIGINT/SIGTERM finish in-flight requests, then close the database. */
export async function startServer(config: ServerConfig) {
  const logger = pino({ level: config.logLevel });
  const db = openDatabase(config.dbPath);
  const core = new ServiceCore({
    db,
    maxQueue: config.maxQueue,
    requestTimeoutMs: config.requestTimeoutMs,
    placementTimeoutMs: config.placementTimeoutMs,
    // BullMQ loads only with the queue backend: start-up without it stays as it was.
    ...(config.redisUrl
      ? { runner: new (await import('../runtime/queue.js')).QueueRunner(config.redisUrl) }
      : {}),
    ...(config.threads ? { threads: config.threads } : {}),
  });
  const app = await buildApp({ core, logger, rateLimitPerMinute: config.rateLimitPerMinute });
  await app.listen({ port: config.port, host: config.host });
  const retention = startRetention(core.runs, config.retention, config.retentionIntervalMs, (err) =>
    logger.error({ err }, 'run retention failed'),
  );
  let closing = false;
  // In the background: a request that arrives meanwhile waits behind the warm-up simulation its
  // thread is running (well under a second).
  if (config.warmUp && core.runner.warmUp) {
    const started = performance.now();
    core.runner.warmUp().then(
      () => logger.info({ ms: Math.round(performance.now() - started) }, 'twin threads warm'),
      // A shutdown during warm-up terminates its threads: that is no failure to report.
      (err: unknown) => {
        if (!closing) logger.warn({ err }, 'twin warm-up did not finish');
      },
    );
  }
  const shutdown = async (signal: string) => {
    if (closing) return;
    closing = true;
    logger.info({ signal }, 'shutting down: finishing in-flight requests');
    retention.stop();
    await app.close();
    await core.close();
    db.close();
    logger.info('closed');
  };
  process.once('SIGINT', () => void shutdown('SIGINT'));
  process.once('SIGTERM', () => void shutdown('SIGTERM'));
  return { app, core, db, shutdown };
}
