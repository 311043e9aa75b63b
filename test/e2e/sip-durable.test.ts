// The SIP face's state outlives the server process (issue 4, what operators of SIP presence servers hit): a real
// `muster serve` is killed and started again between a PUBLISH and its refresh, and a subscription made before the
// restart gets the NOTIFY of a change made over HTTP after it. Operators list live subscriptions and publications
// over HTTP and with the CLI; a user credential gets 403. The client side is sipp, and (for the steps that span the
// restart, which sipp cannot keep state across) a small UDP client reading with the face's own parser.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { existsSync, readFileSync } from 'node:fs';
import { Muster, call, cli } from '../support/harness.ts';
import { sipp } from '../support/sipp.ts';
import { startPoliceWithSip } from '../support/sip-system.ts';
import { UdpClient } from '../support/sip-udp.ts';
import type { IncomingRequest } from '../../src/faces/sip/message.ts';
import type { SipPublicationEntry, SipSubscriptionEntry } from '../../src/client/muster-client.ts';

const D = 'police.example';
const PSI = `sip:mc-server@${D}`;
const G = { patrol: `sip:patrol@${D}`, north: `sip:north@${D}` };
const users = ['alice', 'carol', 'dave', 'erin'].map((n) => `sip:${n}@${D}`);
const [alice, carol, dave, erin] = users as [string, string, string, string];

let m: Muster;
let sipPort: number;

before(async () => {
  ({ m, sipPort } = await startPoliceWithSip({
    sip: { transports: ['udp', 'tcp'], trustedPeers: ['127.0.0.1'] },
    users: users.map((id) => ({ id, services: ['mcptt'], n2: 3, groups: Object.values(G) })),
    groups: Object.values(G).map((id) => ({ id, services: ['mcptt'], members: users })),
  }));
});

after(async () => {
  await m?.stop();
});

/** A request's start line and headers from `c` as `user` (the client's own helper, with this file's PSI). */
function headers(c: UdpClient, method: string, user: string, callId: string, cseq: number, fromTag: string): string[] {
  return c.request({ method, uri: PSI, user, callId, cseq, fromTag });
}

const pidf = (user: string, groups: string[]): string =>
  `<?xml version="1.0" encoding="UTF-8"?><presence xmlns="urn:ietf:params:xml:ns:pidf" xmlns:mcpttPI10="urn:3gpp:ns:mcpttPresInfo:1.0" entity="${user}">` +
  `<tuple id="client-durable"><status>${groups.map((g) => `<mcpttPI10:affiliation group="${g}"/>`).join('')}</status></tuple><mcpttPI10:p-id>pub-1</mcpttPI10:p-id></presence>`;

const groupsIn = (notify: IncomingRequest): string[] => [...notify.body.toString().matchAll(/affiliation group="([^"]+)" status="affiliated"/g)].map((x) => x[1]!).sort();

interface Listed {
  subscriptions: SipSubscriptionEntry[];
  publications: SipPublicationEntry[];
  next: string | null;
  error: { code: string; field?: string };
}

/** The operator's GET of an admin route; the body typed as the lists (or the error) it may be. */
async function operatorGet(path: string): Promise<{ status: number; body: Listed }> {
  const res = await call('GET', `${m.url()}/admin/v1${path}`, await m.operatorToken());
  return { status: res.status, body: res.body as Listed };
}

void test('an operator lists a live SIP subscription over HTTP and with the CLI; a user credential gets 403; a bad limit gets 400 naming it', async () => {
  const run = await sipp('subscribe-and-stay.xml', { port: sipPort }, { psi: PSI, user: alice });
  assert.equal(run.code, 0, run.output);

  const listed = await operatorGet(`/sip/subscriptions?user=${encodeURIComponent(alice)}`);
  assert.equal(listed.status, 200, JSON.stringify(listed.body));
  assert.equal(listed.body.subscriptions.length, 1, JSON.stringify(listed.body));
  const sub = listed.body.subscriptions[0]!;
  assert.equal(sub.watcher, alice);
  assert.equal(sub.userId, alice);
  assert.equal(sub.service, 'mcptt');
  assert.equal(sub.transport, 'udp');
  assert.match(sub.remote, /^127\.0\.0\.1:\d+$/);
  assert.ok(sub.instance.endsWith(`127.0.0.1:${sipPort}`), sub.instance);
  assert.ok(Date.parse(sub.expiresAt) > Date.now() + 500_000, 'Expires: 600 from now');
  assert.equal(listed.body.next, null);

  const asUser = await call('GET', `${m.url()}/admin/v1/sip/subscriptions`, await m.token(alice));
  assert.equal(asUser.status, 403, JSON.stringify(asUser.body));
  const asUserPubs = await call('GET', `${m.url()}/admin/v1/sip/publications`, await m.token(alice));
  assert.equal(asUserPubs.status, 403);
  const badLimit = await operatorGet('/sip/subscriptions?limit=0');
  assert.equal(badLimit.status, 400);
  assert.equal(badLimit.body.error.field, 'limit');
  const badUser = await operatorGet('/sip/subscriptions?user=not-a-uri');
  assert.equal(badUser.status, 400);
  assert.equal(badUser.body.error.field, 'user');

  const byCli = await cli(['sip', 'subscriptions', '--config', join(m.dir, 'config.json'), '--system', 'police', '--user', alice]);
  assert.equal(byCli.code, 0, byCli.stderr);
  const lines = byCli.stdout.trim().split('\n');
  assert.equal(lines.length, 1, byCli.stdout);
  assert.match(lines[0]!, new RegExp(`^${alice}  ${alice}  mcptt  udp 127\\.0\\.0\\.1:\\d+  \\S+Z  \\S+127\\.0\\.0\\.1:${sipPort}$`));
  const cliAsUser = await cli(['sip', 'subscriptions', '--server', m.url(), '--token', await m.token(alice)]);
  assert.notEqual(cliAsUser.code, 0);
  assert.match(cliAsUser.stderr, /403/);
});

void test('the SIP lists are described in the OpenAPI document, with their query parameters', async () => {
  const doc = (await call('GET', `${m.url()}/openapi.json`, undefined)).body as { paths: Record<string, { get?: { parameters?: { name: string }[] } }> };
  for (const path of ['/admin/v1/sip/subscriptions', '/admin/v1/sip/publications']) {
    assert.deepEqual((doc.paths[path]?.get?.parameters ?? []).map((p) => p.name).sort(), ['after', 'limit', 'user'], path);
  }
});

void test('after a restart of the server process, a PUBLISH refresh with the old SIP-ETag gets 200, and a subscription made before gets the NOTIFY of an HTTP change; a TCP one is ended', async () => {
  const c = await UdpClient.open(sipPort);
  try {
    // Before: carol subscribes to her status (UDP) and publishes {patrol}.
    c.send([...headers(c, 'SUBSCRIBE', carol, 'durable-sub', 1, 'c-sub'), 'Accept: application/pidf+xml', 'Expires: 600']);
    assert.equal((await c.response('SUBSCRIBE')).status, 200);
    const first = await c.notify();
    c.send([...headers(c, 'PUBLISH', carol, 'durable-pub', 1, 'c-pub'), 'Expires: 3600', 'Content-Type: application/pidf+xml'], pidf(carol, [G.patrol]));
    const published = await c.response('PUBLISH');
    assert.equal(published.status, 200);
    const etag = published.headers.get('sip-etag');
    assert.ok(etag);
    const second = await c.notify();
    assert.deepEqual(groupsIn(second), [G.patrol]);
    assert.ok(second.cseq.seq > first.cseq.seq);
    // Dave subscribes over TCP: that flow dies with the process.
    const tcp = await sipp('subscribe-and-stay.xml', { port: sipPort }, { psi: PSI, user: dave }, { transport: 't1' });
    assert.equal(tcp.code, 0, tcp.output);
    assert.equal((await operatorGet(`/sip/subscriptions?user=${encodeURIComponent(dave)}`)).body.subscriptions.length, 1);

    await m.kill(); // SIGKILL: nothing runs at shutdown, as in a crash
    await m.spawn();

    // The refresh names the entity-tag the process before handed out (RFC 3903 §6 step 4-5).
    c.send([...headers(c, 'PUBLISH', carol, 'durable-pub', 2, 'c-pub'), `SIP-If-Match: ${etag}`, 'Expires: 3600']);
    const refreshed = await c.response('PUBLISH');
    assert.equal(refreshed.status, 200, `${refreshed.status} ${refreshed.reason}`);
    let etag2 = refreshed.headers.get('sip-etag');
    assert.ok(etag2 && etag2 !== etag, 'a new entity-tag');
    c.send([...headers(c, 'PUBLISH', carol, 'durable-pub', 3, 'c-pub'), `SIP-If-Match: ${etag}`, 'Expires: 3600']);
    assert.equal((await c.response('PUBLISH')).status, 412, 'the replaced entity-tag is stale');

    // Scaled (MUSTER_E2E_BACKEND=postgres): the other instance, which never saw the PUBLISH, refreshes it too.
    const otherConfig = join(m.dir, 'config-1.json');
    if (existsSync(otherConfig)) {
      const port = (JSON.parse(readFileSync(otherConfig, 'utf8')) as { systems: { sip: { port: number } }[] }).systems[0]!.sip.port;
      c.send([...headers(c, 'PUBLISH', carol, 'durable-pub', 4, 'c-pub'), `SIP-If-Match: ${etag2}`, 'Expires: 3600'], '', port);
      const there = await c.response('PUBLISH');
      assert.equal(there.status, 200, `${there.status} ${there.reason}`);
      etag2 = there.headers.get('sip-etag');
    }

    const pubs = await operatorGet(`/sip/publications?user=${encodeURIComponent(carol)}`);
    assert.equal(pubs.status, 200);
    assert.deepEqual(
      pubs.body.publications.map((p) => [p.etag, p.tupleId]),
      [[etag2, 'client-durable']],
    );
    const pubsByCli = await cli(['sip', 'publications', '--config', join(m.dir, 'config.json'), '--system', 'police', '--user', carol]);
    assert.equal(pubsByCli.code, 0, pubsByCli.stderr);
    assert.equal(pubsByCli.stdout.trim(), `${carol}  mcptt  ${etag2}  ${pubs.body.publications[0]!.expiresAt}  client-durable`);

    // A change over HTTP after the restart reaches the subscription made before it.
    const res = await call('POST', `${m.url()}/mc/v1/affiliations`, await m.token(carol), { mcServiceId: carol, service: 'mcptt', groupIds: [G.north] });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    let notify = await c.notify();
    for (let i = 0; i < 3 && groupsIn(notify).length < 2; i++) notify = await c.notify();
    assert.deepEqual(groupsIn(notify), [G.north, G.patrol]);
    assert.equal(notify.callId, 'durable-sub');
    assert.ok(notify.cseq.seq > second.cseq.seq, `CSeq ${notify.cseq.seq} goes on above ${second.cseq.seq}`);
    assert.match(notify.headers.get('subscription-state') ?? '', /^active/);

    // The TCP subscription could not be taken back: it is gone, not listed as live.
    assert.deepEqual((await operatorGet(`/sip/subscriptions?user=${encodeURIComponent(dave)}`)).body.subscriptions, []);
    assert.equal((await operatorGet(`/sip/subscriptions?user=${encodeURIComponent(carol)}`)).body.subscriptions.length, 1);
  } finally {
    c.close();
  }
});

void test("after a restart, a UDP subscription to a group's members goes on: a member affiliating over HTTP is in its next NOTIFY", async () => {
  const c = await UdpClient.open(sipPort);
  const info = `<?xml version="1.0" encoding="UTF-8"?><mcpttinfo xmlns="urn:3gpp:ns:mcpttInfo:1.0"><mcptt-Params><mcptt-request-uri type="Normal"><mcpttURI>${G.north}</mcpttURI></mcptt-request-uri></mcptt-Params></mcpttinfo>`;
  const members = (n: IncomingRequest): string[] => [...n.body.toString().matchAll(/<contact>([^<]+)<\/contact>/g)].map((x) => x[1]!).sort();
  try {
    // Alice, a member of north, may read its members (mayViewMembers); the row names the group, not a user.
    c.send([...headers(c, 'SUBSCRIBE', alice, 'durable-group', 1, 'a-grp'), 'Accept: application/pidf+xml', 'Expires: 600', 'Content-Type: application/vnd.3gpp.mcptt-info+xml'], info);
    assert.equal((await c.response('SUBSCRIBE')).status, 200);
    const first = await c.notify();
    assert.match(first.body.toString(), new RegExp(`entity="${G.north}"`));
    assert.ok(!members(first).includes(dave));

    await m.kill();
    await m.spawn();

    const res = await call('POST', `${m.url()}/mc/v1/affiliations`, await m.token(dave), { mcServiceId: dave, service: 'mcptt', groupIds: [G.north] });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const after = await c.notify();
    assert.equal(after.callId, 'durable-group');
    assert.match(after.body.toString(), new RegExp(`entity="${G.north}"`), 'still the group document after the restart');
    assert.ok(members(after).includes(dave), after.body.toString());
  } finally {
    c.close();
  }
});

void test('a NOTIFY answered 500 (the client got it out of order) keeps the subscription; one answered 481 ends it (RFC 5057, RFC 6665)', async () => {
  const c = await UdpClient.open(sipPort);
  try {
    c.send([...headers(c, 'SUBSCRIBE', erin, 'keep-sub', 1, 'e-sub'), 'Accept: application/pidf+xml', 'Expires: 600']);
    assert.equal((await c.response('SUBSCRIBE')).status, 200);
    await c.notify(500);
    // A change over HTTP: the subscription still gets its NOTIFY.
    await call('POST', `${m.url()}/mc/v1/affiliations`, await m.token(erin), { mcServiceId: erin, service: 'mcptt', groupIds: [G.patrol] });
    assert.deepEqual(groupsIn(await c.notify(481)), [G.patrol]);
    for (let i = 0; i < 50 && (await operatorGet(`/sip/subscriptions?user=${encodeURIComponent(erin)}`)).body.subscriptions.length > 0; i++) await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual((await operatorGet(`/sip/subscriptions?user=${encodeURIComponent(erin)}`)).body.subscriptions, [], 'the 481 ended it');
  } finally {
    c.close();
  }
});
