// RFC 3903 §6 expiry of an affiliation publication (publish-user-agent-server.ts, expirePublication) when a group
// cannot be left now: the partner system hosting it does not answer. On a real system (SQLite) in the test's
// process whose partner's address refuses connections: the own group is left, the partner group stays, and the
// publication comes back expiring again shortly, so leaving it is tried again instead of forgotten.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { McUri } from '../../src/domain/ids.ts';
import { Publications } from '../../src/faces/sip/publication-state.ts';
import { EXPIRY_RETRY_MS, expirePublication } from '../../src/faces/sip/publish-user-agent-server.ts';
import type { SipFaceContext } from '../../src/faces/sip/face-context.ts';
import { policeId, policeSystem, withSystem } from '../support/in-process.ts';

const alice = policeId('alice');
const patrol = policeId('patrol');
const engine = 'sip:engine@fire.example' as McUri;

void test("an expired publication whose partner group cannot be left now comes back, expiring again shortly; the own group is left", async () => {
  const system = policeSystem({
    // Nothing listens on port 9 of loopback: the partner refuses every connection (partner-unreachable).
    partners: [{ domain: 'fire.example', url: 'http://127.0.0.1:9', secret: 'shared' }],
    users: [{ id: alice, services: ['mcptt'], n2: 3, groups: [patrol, engine] }],
    groups: [{ id: patrol, services: ['mcptt'], members: [alice] }],
  });
  await withSystem(system, async (police) => {
    const server = police.server;
    await server.store.changeAffiliations(alice, 'mcptt', () => ({ put: [patrol, engine].map((groupId) => ({ groupId, state: 'affiliated' as const })), remove: [], tellGms: [], events: [], result: null }));
    const publications = new Publications(server.store, server.clock);
    const pub = await publications.put(alice, 'mcptt', 60, { pId: undefined, tupleId: undefined, groups: [patrol, engine] });
    let notified = 0;
    const ctx = { server, publications, exclusive: (_u: McUri, fn: () => Promise<unknown>) => fn(), notifyWatchers: () => void notified++ } as unknown as SipFaceContext;

    const before = server.clock.now();
    await expirePublication(ctx, pub);
    assert.deepEqual((await server.store.affiliationsOfUser(alice)).map((r) => r.groupId), [engine], 'the own group left, the partner group kept');
    const back = await publications.get(alice, 'mcptt');
    assert.equal(back?.etag, pub.etag, 'the same publication is back');
    assert.ok(back.expiresAt! >= before + EXPIRY_RETRY_MS && back.expiresAt! <= server.clock.now() + EXPIRY_RETRY_MS, `expiring again in ${EXPIRY_RETRY_MS} ms`);
    assert.equal(notified, 1, "watchers told of the own group's end");
  });
});
