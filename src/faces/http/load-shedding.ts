// Overload shedding (issue 7): at most `maxInFlight` requests are worked on at once in this server instance; one more
// is answered 503 with Retry-After at once, before its body is read, instead of waiting in a queue that only grows.
// Liveness (/healthz) is always answered. A slot is freed when the response ends or the connection closes, so the
// server recovers by itself when the load drops.
import type { FastifyInstance } from 'fastify';
import { MusterError } from '../../domain/errors.ts';
import { toUnprocessedReply } from './error-reply.ts';

/** Routes that answer with a Server-Sent Events stream: admitted against the bound, but idle, so they hold no slot. */
const STREAMS = new Set(['/mc/v1/events', '/gms/v1/policy/events']);
const EXEMPT = new Set(['/healthz']);

export function shedLoad(app: FastifyInstance, maxInFlight: number): { inFlight(): number } {
  let inFlight = 0;
  app.addHook('onRequest', async (req, reply) => {
    const route = req.routeOptions.url ?? '';
    if (EXEMPT.has(route)) return;
    if (inFlight >= maxInFlight) {
      const { status, body } = toUnprocessedReply(new MusterError('unavailable', `overloaded: ${inFlight} requests in progress; retry shortly`));
      return reply.code(status).header('retry-after', '1').send(body);
    }
    if (STREAMS.has(route)) return;
    inFlight += 1;
    // 'close' comes once per response, whether it was sent in full or the client went away (onResponse misses that).
    reply.raw.once('close', () => (inFlight -= 1));
  });
  return { inFlight: () => inFlight };
}
