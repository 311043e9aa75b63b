// An open-loop load at a steady rate (issue 6, "p99 at half that load"): requests leave at evenly spaced moments
// whatever the answers do, over a pool of undici connections, and each latency counts from the moment its request
// was due, so a stalled server shows as latency instead of as fewer requests (no coordinated omission).
// autocannon's own rate limit sends each connection's quota for a second back to back at the start of the second,
// which is a burst at full load for part of every second, not a steady half load.
import { Pool } from 'undici';
import { percentile, type Figures, type WorkloadRequest } from './workload.ts';

/** Requests more than this late (the server cannot keep up) end the run early: it is then not a steady load. */
const MAX_BACKLOG = 5000;

/**
 * `settleSeconds` at the same rate come first and are not measured: a run that follows a full-rate one would
 * otherwise time the server's recovery from it (its WAL checkpoint catching up), not the steady load asked for.
 */
export async function pacedLoad(url: string, nextRequest: () => WorkloadRequest, opts: { rate: number; seconds: number; connections: number; settleSeconds?: number }): Promise<Figures & { late: number }> {
  const pool = new Pool(url, { connections: opts.connections, pipelining: 1, headersTimeout: 10_000, bodyTimeout: 10_000 });
  const latencies: number[] = [];
  let errors = 0;
  let non2xx = 0;
  let inFlight = 0;
  let sent = 0;
  const settle = Math.round(opts.rate * (opts.settleSeconds ?? 0));
  const total = settle + Math.round(opts.rate * opts.seconds);
  const start = performance.now();
  const send = (due: number, measured: boolean): void => {
    const r = nextRequest();
    inFlight++;
    pool
      .request({ method: 'POST', path: r.path, headers: r.headers, body: r.body })
      .then(async (res) => {
        await res.body.dump();
        if (res.statusCode < 200 || res.statusCode >= 300) non2xx++;
        if (measured) latencies.push(performance.now() - due);
      })
      .catch(() => errors++)
      .finally(() => inFlight--);
  };
  // Each turn sends what has fallen due since the last one; bounded by the request count and the backlog.
  while (sent < total) {
    const due = Math.min(total, Math.floor(((performance.now() - start) / 1000) * opts.rate));
    if (inFlight > MAX_BACKLOG) break;
    for (; sent < due; sent++) send(start + (sent / opts.rate) * 1000, sent >= settle);
    await new Promise((r) => setTimeout(r, 1)); // a timer, not a spin: the load generator must not eat the server's core
  }
  const deadline = performance.now() + 15_000;
  while (inFlight > 0 && performance.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  const elapsed = (performance.now() - start) / 1000 - (opts.settleSeconds ?? 0);
  await pool.close();
  latencies.sort((a, b) => a - b);
  const at = (q: number): number => Math.round(percentile(latencies, q) * 10) / 10;
  return { requestsPerSecond: latencies.length / elapsed, p50: at(0.5), p99: at(0.99), errors, non2xx, late: total - sent };
}
