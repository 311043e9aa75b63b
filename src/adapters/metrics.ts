// Prometheus metrics of this process (GET /admin/v1/metrics): what an operator needs to see why answers are slow,
// the timings issue 6's investigation had to patch in by hand: WAL syncs, commit batches, the holds that restart
// the WAL, request durations per route, and Node's own (event-loop delay, GC, memory). One registry per process:
// Prometheus scrapes a process, and the SQLite adapters serve every system the process runs.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export const metricsRegistry = new Registry();
collectDefaultMetrics({ register: metricsRegistry, prefix: 'muster_' });

const SECONDS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

export const walSyncSeconds = new Histogram({
  name: 'muster_sqlite_wal_sync_seconds',
  help: 'fdatasync of the SQLite WAL that answers wait for (group commit)',
  buckets: SECONDS,
  registers: [metricsRegistry],
});

export const commitWrites = new Histogram({
  name: 'muster_sqlite_commit_writes',
  help: 'Writes (requests) sharing one SQLite group-commit transaction',
  buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512],
  registers: [metricsRegistry],
});

export const walRestartHoldSeconds = new Histogram({
  name: 'muster_sqlite_wal_restart_hold_seconds',
  help: 'Commits held while the checkpointer copied the last WAL frames so the WAL could start again',
  buckets: SECONDS,
  registers: [metricsRegistry],
});

export const checkpointFailures = new Counter({
  name: 'muster_sqlite_checkpoint_failures_total',
  help: 'WAL checkpoints that failed (the next one retries)',
  registers: [metricsRegistry],
});

const requestSeconds = new Histogram({
  name: 'muster_http_request_duration_seconds',
  help: 'HTTP requests from their arrival to their answer, by system, route and status class',
  labelNames: ['system', 'method', 'route', 'status'] as const,
  buckets: SECONDS,
  registers: [metricsRegistry],
});

/** One child per label set, kept: prom-client hashes the labels on every lookup otherwise. */
const requestChildren = new Map<string, ReturnType<typeof requestSeconds.labels>>();

export function observeRequest(system: string, method: string, route: string, status: number, seconds: number): void {
  const statusClass = `${Math.floor(status / 100)}xx`;
  const key = `${system} ${method} ${route} ${statusClass}`;
  let child = requestChildren.get(key);
  if (!child) {
    child = requestSeconds.labels(system, method, route, statusClass);
    requestChildren.set(key, child);
  }
  child.observe(seconds);
}

const sipRequestSeconds = new Histogram({
  name: 'muster_sip_request_duration_seconds',
  help: 'SIP requests from their arrival to their final answer, by method and status class',
  labelNames: ['method', 'status'] as const,
  buckets: SECONDS,
  registers: [metricsRegistry],
});

/** The methods Muster serves, each its own label; any other (a sender's invention) counts as `other`. */
const SIP_METHODS = new Set(['PUBLISH', 'SUBSCRIBE', 'MESSAGE', 'OPTIONS', 'NOTIFY']);
const sipChildren = new Map<string, ReturnType<typeof sipRequestSeconds.labels>>();

export function observeSipRequest(method: string, status: number, seconds: number): void {
  const key = `${SIP_METHODS.has(method) ? method : 'other'} ${Math.floor(status / 100)}xx`;
  let child = sipChildren.get(key);
  if (!child) {
    const [m, c] = key.split(' ') as [string, string];
    child = sipRequestSeconds.labels(m, c);
    sipChildren.set(key, child);
  }
  child.observe(seconds);
}

// Several instances of one system (nats-fabric.ts): a change an instance did not confirm is not in force there.
export const fabricInstancesBehind = new Gauge({
  name: 'muster_fabric_instances_behind',
  help: 'Other live instances that have not confirmed a change this instance announced (asked to read the store again until they do or leave)',
  labelNames: ['system'] as const,
  registers: [metricsRegistry],
});

export const fabricCachesBehind = new Gauge({
  name: 'muster_fabric_caches_behind',
  help: '1 while this instance knows its profiles or group policies miss a change (its read of the store failed; retried)',
  labelNames: ['system'] as const,
  registers: [metricsRegistry],
});

export const fabricUnconfirmedChanges = new Counter({
  name: 'muster_fabric_unconfirmed_changes_total',
  help: 'Changes answered as stored but not yet in force at every live instance (202 with notConfirmed)',
  labelNames: ['system'] as const,
  registers: [metricsRegistry],
});
