// An operator's change (user profile, group document) on a system of several instances: stored at once, in force at
// an instance once it confirmed. A change some live instance did not confirm within the bound, or that the fabric
// could not carry at all (this instance cut off from NATS, or its connection closed), is answered 202 with those
// instances (`notConfirmed`) and a `warning`, never as done and never as failed: that instance may still serve the
// old profile or policy (a user removed from a group could still affiliate there). The change is not rolled back.
import type { FastifyReply } from 'fastify';
import { CONFIRM_WITHIN_MS } from '../../adapters/nats-fabric.ts';
import type { Announced } from '../../ports/announcement.ts';

export interface NotInForce {
  notConfirmed: string[];
  warning: string;
}

export function notInForce({ notConfirmed, untold }: Announced): NotInForce {
  const instances = notConfirmed.join(', ');
  return {
    notConfirmed: [...notConfirmed],
    warning: untold
      ? `stored, not yet in force at instances ${instances}: the fabric could not be told: ${untold} (GET /healthz: instancesBehind)`
      : `stored, not yet in force at instances ${instances}: they did not confirm within ${CONFIRM_WITHIN_MS / 1000} s; ` +
        'each is asked to read the store again until it confirms or leaves the live instances (GET /healthz: instancesBehind)',
  };
}

/** A stored document: 200 with it when in force everywhere, else 202 with it and what is not yet in force. */
export function answerStored<T extends object>(reply: FastifyReply, doc: T, announced: Announced): T | (T & NotInForce) {
  if (announced.notConfirmed.length === 0) return doc;
  reply.code(202);
  return { ...doc, ...notInForce(announced) };
}

/** A deletion: 204 when in force everywhere, else 202 `{ id, deleted: true, notConfirmed, warning }`. */
export function answerDeleted(reply: FastifyReply, id: string, announced: Announced): FastifyReply {
  if (announced.notConfirmed.length === 0) return reply.code(204).send();
  return reply.code(202).send({ id, deleted: true, ...notInForce(announced) });
}
