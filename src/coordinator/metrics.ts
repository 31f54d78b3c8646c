// The process's one /metrics view: main-thread metrics (latencies, exits,
// restarts, reconnects, Node's process metrics once) plus every shard
// worker's registry, aggregated with prom-client's AggregatorRegistry.
import { AggregatorRegistry, Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

const CREATE_BUCKETS = [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1, 2.5, 5, 10];
const LAG_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

export class ServiceMetrics {
  readonly registry = new Registry();
  readonly createDuration = new Histogram({
    name: 'plugind_create_duration_seconds',
    help: 'From a run request received to the plugin task started.',
    buckets: CREATE_BUCKETS,
    registers: [this.registry],
  });
  readonly eventLag = new Histogram({
    name: 'plugind_event_lag_seconds',
    help: "From containerd's exit event timestamp to the event reaching plugind; each exit event once.",
    buckets: LAG_BUCKETS,
    registers: [this.registry],
  });
  readonly exits = new Counter({ name: 'plugind_exits_total', help: 'Plugin exits told, each once.', registers: [this.registry] });
  readonly stateWriteErrors = new Counter({
    name: 'plugind_state_write_errors_total',
    help: "Failed writes of plugind's own record of exits told (told-exits in the data dir), a full disk say.",
    registers: [this.registry],
  });
  readonly workerRestarts = new Counter({
    name: 'plugind_worker_restarts_total',
    help: 'Shard worker threads that died and were replaced.',
    registers: [this.registry],
  });
  readonly containerdReconnects = new Counter({
    name: 'plugind_containerd_reconnects_total',
    help: 'Times the containerd event stream broke and was re-established.',
    registers: [this.registry],
  });

  readonly oomKills = new Counter({
    name: 'plugind_oom_kills_total',
    help: "OOM kills in plugins' containers (containerd's /tasks/oom), each a plugin past its memory limit.",
    registers: [this.registry],
  });

  readonly pluginRestarts = new Counter({
    name: 'plugind_plugin_restarts_total',
    help: "Runs of a plugin by its restart policy (series removed with the plugin).",
    labelNames: ['plugin'],
    registers: [this.registry],
  });

  /** containerdUp: whether containerd answers now (asked at each scrape). */
  constructor(containerdUp: () => Promise<boolean>) {
    new Gauge({
      name: 'plugind_containerd_up',
      help: 'Whether containerd answered its health check at this scrape (1) or not (0).',
      registers: [this.registry],
      async collect() {
        this.set((await containerdUp()) ? 1 : 0);
      },
    });
    collectDefaultMetrics({ register: this.registry });
    // Gauges named like counters, which promtool rejects.
    for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) {
      this.registry.removeSingleMetric(name);
    }
  }

  /** Prometheus text for the whole process, given each worker's getMetricsAsJSON(). */
  async render(workers: unknown[][]): Promise<{ contentType: string; body: string }> {
    const merged = Registry.merge([AggregatorRegistry.aggregate(workers as Parameters<typeof AggregatorRegistry.aggregate>[0]), this.registry]);
    return { contentType: merged.contentType, body: await merged.metrics() };
  }
}
