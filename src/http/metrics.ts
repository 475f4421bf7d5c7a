import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { RunnerStats } from '../runtime/runner.js';
import type { ServiceCore } from '../service/core.js';

/** Prometheus metrics of the service, on a registry of its own (tests build many apps). */
export class ServiceMetrics {
  private readonly registry = new Registry();
  readonly requests: Counter<'route' | 'method' | 'status'>;
  readonly latency: Histogram<'route' | 'method'>;
  readonly errors: Counter<'status'>;
  /** The twin runner's counts as of the last render (undefined when they could not be read). */
  private queueStats: RunnerStats | undefined;

  constructor(private readonly core: ServiceCore) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    this.requests = new Counter({
      name: 'loraplan_http_requests_total',
      help: 'HTTP requests',
      labelNames: ['route', 'method', 'status'],
      registers,
    });
    this.latency = new Histogram({
      name: 'loraplan_http_request_duration_seconds',
      help: 'HTTP request latency',
      labelNames: ['route', 'method'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers,
    });
    this.errors = new Counter({
      name: 'loraplan_http_problems_total',
      help: 'Problem responses by status',
      labelNames: ['status'],
      registers,
    });
    new Gauge({
      name: 'loraplan_simulation_cache_hits_total',
      help: 'Twin results served from the cache',
      registers,
      collect() {
        this.set(core.cache.stats.hits);
      },
    });
    new Gauge({
      name: 'loraplan_simulation_cache_misses_total',
      help: 'Twin results computed',
      registers,
      collect() {
        this.set(core.cache.stats.misses);
      },
    });
    new Gauge({
      name: 'loraplan_twin_runs_total',
      help: 'Twin simulations started on the worker pool',
      registers,
      collect() {
        this.set(core.twinRuns);
      },
    });
    new Gauge({
      name: 'loraplan_twin_cancelled_total',
      help: 'Twin computations stopped because every request waiting on them gave up',
      registers,
      collect() {
        this.set(core.cache.stats.cancelled);
      },
    });
    // The queue's own counts (every instance's jobs, with the queue backend), fetched once per
    // scrape by render(); the in-process pool knows only its depth.
    const queue = () => this.queueStats;
    new Gauge({
      name: 'loraplan_twin_queue_depth',
      help: 'Twin tasks waiting for a worker',
      registers,
      collect() {
        this.set(queue()?.waiting ?? core.runner.queueSize);
      },
    });
    new Gauge({
      name: 'loraplan_twin_jobs_active',
      help: 'Twin jobs running on workers (queue backend)',
      registers,
      collect() {
        this.set(queue()?.active ?? 0);
      },
    });
    new Gauge({
      name: 'loraplan_twin_jobs_failed',
      help: 'Twin jobs that failed on every attempt and are still kept (queue backend)',
      registers,
      collect() {
        this.set(queue()?.failed ?? 0);
      },
    });
    new Gauge({
      name: 'loraplan_twin_worker_jobs_completed_total',
      help: 'Twin jobs each worker completed (queue backend; rate() gives its throughput)',
      labelNames: ['worker'],
      registers,
      collect() {
        this.reset();
        for (const w of queue()?.workers ?? []) this.set({ worker: w.name }, w.completed);
      },
    });
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  observe(route: string, method: string, status: number, elapsedMs: number): void {
    this.requests.inc({ route, method, status: String(status) });
    this.latency.observe({ route, method }, elapsedMs / 1000);
  }

  async render(): Promise<string> {
    this.queueStats = await this.core.runner.stats().catch(() => undefined);
    return this.registry.metrics();
  }
}
