// E2E, one system with its SIP face: input a security review's probes found accepted or answered 500 (each failed on
// the code before) now gets a 4xx naming what is wrong, and nothing changes: alice keeps exactly her group. Also
// group display names with control characters, and bodies whose Content-Type is not JSON (415).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket, type Socket } from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { Muster, call, freePort, secret } from '../support/harness.ts';
import { issueToken } from '../../src/faces/http/credentials.ts';

const D = 'police.example';
const alice = `sip:alice@${D}`;
const patrol = `sip:patrol@${D}`;
const north = `sip:north@${D}`;
const enc = encodeURIComponent;

let m: Muster;
let base: string;
let sipPort: number;
let systemSecret: string;
let sock: Socket;

before(async () => {
  sipPort = await freePort();
  systemSecret = secret();
  m = await Muster.start({
    systems: [
      {
        name: 'police',
        domain: D,
        http: { port: await freePort() },
        secret: systemSecret,
        sip: { port: sipPort, trustedPeers: ['127.0.0.1'] },
        users: [{ id: alice, services: ['mcptt'], n2: 5, groups: [patrol, north] }],
        groups: [patrol, north].map((id) => ({ id, services: ['mcptt'], members: [alice] })),
      },
    ],
  });
  base = m.url();
  sock = createSocket('udp4');
  await new Promise<void>((resolve) => sock.bind(0, '127.0.0.1', resolve));
  const r = await call('POST', `${base}/mc/v1/affiliations`, await m.token(alice), { mcServiceId: alice, service: 'mcptt', groupIds: [patrol] });
  assert.equal(r.status, 200, JSON.stringify(r.body));
});

after(async () => {
  sock?.close();
  await m?.stop();
});

/** Alice holds patrol and nothing else, and no SIP subscription or publication was stored. */
async function unchanged(): Promise<void> {
  assert.deepEqual(await m.affiliatedGroups(alice), [patrol]);
  const op = await m.operatorToken();
  assert.deepEqual(((await call('GET', `${base}/admin/v1/sip/subscriptions`, op)).body as { subscriptions: unknown[] }).subscriptions, []);
  assert.deepEqual(((await call('GET', `${base}/admin/v1/sip/publications`, op)).body as { publications: unknown[] }).publications, []);
}

type ErrorBody = { error?: { code: string; message: string; field?: string } };

async function rawHttp(path: string, headers: Record<string, string>, method = 'GET', body?: Buffer): Promise<{ status: number; body: ErrorBody }> {
  const res = await fetch(`${base}${path}`, { method, headers, body: body === undefined ? undefined : new Uint8Array(body), signal: AbortSignal.timeout(10_000) });
  return { status: res.status, body: (await res.json()) as ErrorBody };
}

void test('HTTP: a Last-Event-ID that is no event id is a 400 naming it, not a stream that closes or skips every event', async () => {
  const auth = { authorization: `Bearer ${await m.token(alice)}` };
  for (const junk of ['99999999999999999999999', 'junk', '-5', '12abc']) {
    const r = await rawHttp('/mc/v1/events', { ...auth, 'last-event-id': junk });
    assert.equal(r.status, 400, `${junk}: ${JSON.stringify(r.body)}`);
    assert.equal(r.body.error?.field, 'Last-Event-ID');
  }
  // An id the server could have sent still opens the stream.
  const ok = await fetch(`${base}/mc/v1/events`, { headers: { ...auth, 'last-event-id': '1' }, signal: AbortSignal.timeout(10_000) });
  assert.equal(ok.status, 200);
  await ok.body?.cancel();
  await unchanged();
});

void test('HTTP: a body that is not UTF-8, and an ID with a lone surrogate, are 400 naming the field; nothing applied', async () => {
  const headers = { authorization: `Bearer ${await m.token(alice)}`, 'content-type': 'application/json' };
  // "sip:no<0xff>rth@police.example": decoded, it read as sip:no\ufffdrth, another group than the one sent.
  const bytes = Buffer.concat([Buffer.from(`{"mcServiceId":"${alice}","service":"mcptt","groupIds":["sip:no`), Buffer.from([0xff]), Buffer.from(`rth@${D}"]}`)]);
  const r = await rawHttp('/mc/v1/affiliations', headers, 'POST', bytes);
  assert.equal(r.status, 400, JSON.stringify(r.body));
  assert.equal(r.body.error?.field, 'body');
  const s = await rawHttp('/mc/v1/affiliations', headers, 'POST', Buffer.from(`{"mcServiceId":"${alice}","service":"mcptt","groupIds":["sip:no\\ud800rth@${D}"]}`));
  assert.equal(s.status, 400, JSON.stringify(s.body));
  assert.equal(s.body.error?.field, 'groupIds[0]');
  await unchanged();
});

void test('HTTP: a group displayName with a control character (NUL among them) or a lone surrogate is a 400 naming it; the document is unchanged', async () => {
  const op = await m.operatorToken();
  const headers = { authorization: `Bearer ${op}`, 'content-type': 'application/json' };
  const doc = (displayName: string): string => `{"services":["mcptt"],"members":["${alice}"],"displayName":"${displayName}"}`;
  // Escaped in the JSON text, so the server's parser makes the characters; \ud800 is a surrogate with no partner.
  for (const bad of ['North\\u0000', 'North\\u0007', 'two\\nlines', 'nel\\u0085', 'half\\ud800']) {
    const r = await rawHttp(`/gms/v1/groups/${enc(north)}`, headers, 'PUT', Buffer.from(doc(bad)));
    assert.equal(r.status, 400, `${bad}: ${JSON.stringify(r.body)}`);
    assert.equal(r.body.error?.field, 'displayName', bad);
  }
  const stored = await call('GET', `${base}/gms/v1/groups/${enc(north)}`, op);
  assert.equal(stored.status, 200);
  assert.equal((stored.body as { displayName?: string }).displayName, undefined, 'nothing stored');
  await unchanged();
});

void test('HTTP: a body to a JSON route whose Content-Type is not JSON, or missing, is a 415 naming content-type; bodiless requests still pass', async () => {
  const auth = { authorization: `Bearer ${await m.token(alice)}` };
  const body = Buffer.from(JSON.stringify({ mcServiceId: alice, service: 'mcptt', groupIds: [north] }));
  for (const contentType of ['text/plain', 'text/plain; charset=utf-8', 'application/x-www-form-urlencoded', undefined]) {
    const r = await rawHttp('/mc/v1/affiliations', { ...auth, ...(contentType ? { 'content-type': contentType } : {}) }, 'POST', body);
    assert.equal(r.status, 415, `${contentType ?? 'no Content-Type'}: ${JSON.stringify(r.body)}`);
    assert.equal(r.body.error?.code, 'unsupported-media-type', contentType);
    assert.equal(r.body.error?.field, 'content-type', contentType);
    assert.match(r.body.error?.message ?? '', /application\/json/);
  }
  await unchanged();
  // A request without a body needs no Content-Type: a DELETE of a group that is not there is a 404, not a 415.
  const op = await m.operatorToken();
  const gone = await rawHttp(`/gms/v1/groups/${enc(`sip:nobody@${D}`)}`, { authorization: `Bearer ${op}` }, 'DELETE');
  assert.equal(gone.status, 404, JSON.stringify(gone.body));
  // Nor with a Content-Type but an empty body (fetch sends text/plain for a body of ''): nothing to refuse.
  const empty = await rawHttp(`/gms/v1/groups/${enc(`sip:nobody@${D}`)}`, { authorization: `Bearer ${op}`, 'content-type': 'text/plain;charset=UTF-8' }, 'DELETE', Buffer.alloc(0));
  assert.equal(empty.status, 404, JSON.stringify(empty.body));
  // JSON with its charset parameter is JSON.
  const ok = await rawHttp(`/mc/v1/users/${enc(alice)}/affiliations`, auth);
  assert.equal(ok.status, 200, JSON.stringify(ok.body));
  const json = await rawHttp('/mc/v1/deaffiliations', { ...auth, 'content-type': 'application/json; charset=utf-8' }, 'POST', body);
  assert.equal(json.status, 200, JSON.stringify(json.body));
  await unchanged();
});

void test('HTTP: a user credential whose subject is no MC service ID is a 401, not a 500; "bearer" in lower case is accepted', async () => {
  const noId = await issueToken({ secret: systemSecret, domain: D, subject: 'not an id', role: 'user' });
  const r = await call('GET', `${base}/mc/v1/users/${enc(alice)}/affiliations`, noId);
  assert.equal(r.status, 401, JSON.stringify(r.body));
  assert.equal((r.body as ErrorBody).error?.code, 'unauthenticated');
  const lower = await rawHttp(`/mc/v1/users/${enc(alice)}/affiliations`, { authorization: `bearer ${await m.token(alice)}` });
  assert.equal(lower.status, 200, JSON.stringify(lower.body));
  await unchanged();
});

void test('HTTP: a GMS status update with a seq past the safe integers is a 400 naming it (was a 500 on PostgreSQL)', async () => {
  const r = await call('POST', `${base}/gms/v1/affiliation-status`, await m.operatorToken(), { updates: [{ seq: 1e300, userId: alice, groupId: north, service: 'mcptt', status: 'affiliated' }] });
  assert.equal(r.status, 400, JSON.stringify(r.body));
  assert.equal((r.body as ErrorBody).error?.field, 'updates[0].seq');
  await unchanged();
});

/** One SIP request from our UDP port as alice (trusted peer); the status line of its answer, or undefined after 3 s. */
async function sip(opts: { method?: string; extra?: string[]; body?: Buffer; mangle?: (head: string) => string }): Promise<string | undefined> {
  const method = opts.method ?? 'PUBLISH';
  const body = opts.body ?? Buffer.alloc(0);
  const callId = randomBytes(6).toString('hex');
  let head = [
    `${method} sip:mc-server@${D} SIP/2.0`,
    `Via: SIP/2.0/UDP 127.0.0.1:${sock.address().port};branch=z9hG4bK-${randomBytes(6).toString('hex')};rport`,
    `From: <${alice}>;tag=${randomBytes(3).toString('hex')}`,
    `To: <sip:mc-server@${D}>`,
    `Call-ID: ${callId}`,
    `CSeq: 1 ${method}`,
    `Contact: <sip:c@127.0.0.1:${sock.address().port}>`,
    'Max-Forwards: 70',
    `P-Asserted-Identity: <${alice}>`,
    'P-Preferred-Service: urn:urn-7:3gpp-service.ims.icsi.mcptt',
    'Event: presence',
    ...(opts.extra ?? []),
    `Content-Length: ${body.length}`,
  ].join('\r\n');
  if (opts.mangle) head = opts.mangle(head);
  const answer = new Promise<string | undefined>((resolve) => {
    const t = setTimeout(() => (sock.off('message', on), resolve(undefined)), 3000);
    const on = (b: Buffer): void => {
      const text = b.toString('latin1');
      if (!text.startsWith('SIP/2.0') || !text.includes(callId.slice(0, 12))) return;
      clearTimeout(t);
      sock.off('message', on);
      resolve(text.split('\r\n')[0]);
    };
    sock.on('message', on);
  });
  sock.send(Buffer.concat([Buffer.from(`${head}\r\n\r\n`), body]), sipPort, '127.0.0.1');
  return answer;
}

const pidf = (group: Buffer): Buffer =>
  Buffer.concat([
    Buffer.from(`<?xml version="1.0" encoding="UTF-8"?><presence xmlns="urn:ietf:params:xml:ns:pidf" xmlns:mcpttPI10="urn:3gpp:ns:mcpttPresInfo:1.0" entity="${alice}"><tuple id="c1"><status><mcpttPI10:affiliation group="`),
    group,
    Buffer.from('"/></status></tuple></presence>'),
  ]);

void test('SIP: two Expires that differ are a 400, not "Expires: 0" that leaves every group', async () => {
  const status = await sip({ extra: ['Content-Type: application/pidf+xml', 'Expires: 0', 'Expires: 3600'], body: pidf(Buffer.from(patrol)) });
  assert.match(status ?? 'no answer', /^SIP\/2\.0 400 .*expires header repeated/);
  await unchanged();
});

void test('SIP: a PIDF whose bytes are not UTF-8 is a 400, not a set that replaces alice\'s with a group never named', async () => {
  const status = await sip({ extra: ['Content-Type: application/pidf+xml', 'Expires: 3600'], body: pidf(Buffer.concat([Buffer.from('sip:pat'), Buffer.from([0xff]), Buffer.from(`rol@${D}`)])) });
  assert.match(status ?? 'no answer', /^SIP\/2\.0 400 .*UTF-8/);
  await unchanged();
});

void test('SIP: a control character in a Call-ID or From tag is a 400 (a NUL was a 500 on PostgreSQL, stored on SQLite)', async () => {
  const nulCallId = await sip({ method: 'SUBSCRIBE', extra: ['Expires: 60'], mangle: (h) => h.replace(/Call-ID: (\S+)/, 'Call-ID: $1\u0000x') });
  assert.match(nulCallId ?? 'no answer', /^SIP\/2\.0 400 .*control character/);
  const nulTag = await sip({ method: 'SUBSCRIBE', extra: ['Expires: 60'], mangle: (h) => h.replace(/;tag=(\S+)/, ';tag=$1\u0000x') });
  assert.match(nulTag ?? 'no answer', /^SIP\/2\.0 400 .*control character/);
  await unchanged();
});
