// Remote change over SIP (TS 24.379 §9.2.1.4, §9.2.1.5, Annex F.4) against a real server process, driven by sipp:
// the affiliation command MESSAGE of a dispatcher, the MESSAGE to the target's client over its subscription's flow,
// the target's answer (PUBLISH of its new set, or 603), refusals that store nothing, HTTP <-> SIP visibility, and a
// dispatcher's PUBLISH on another user's behalf as the same mandatory change the HTTP API makes.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Muster, call } from '../support/harness.ts';
import { startPoliceWithSip } from '../support/sip-system.ts';
import { sipp, type SippRun } from '../support/sipp.ts';
import { MusterClient, type McEvent } from '../../src/client/muster-client.ts';
import { UdpClient } from '../support/sip-udp.ts';
import { readRefusalWarning } from '../../src/faces/sip/warning.ts';

const D = 'police.example';
const PSI = `sip:mc-server@${D}`;
const G = { patrol: `sip:patrol@${D}`, north: `sip:north@${D}`, south: `sip:south@${D}` };
const u = (n: string): string => `sip:${n}@${D}`;
const [dispatch, carol, bob, erin, frank, gina, hank, ivy] = ['dispatch', 'carol', 'bob', 'erin', 'frank', 'gina', 'hank', 'ivy'].map(u) as [string, string, string, string, string, string, string, string];
// lead's remote-change right covers patrol and north only; jack, kate, liam and mona are targets of on-behalf PUBLISHes.
const [lead, jack, kate, liam, mona] = ['lead', 'jack', 'kate', 'liam', 'mona'].map(u) as [string, string, string, string, string];

let m: Muster;
let sipPort: number;

before(async () => {
  const people = [bob, erin, frank, gina, hank, carol, ivy, jack, kate, liam, mona];
  ({ m, sipPort } = await startPoliceWithSip({
    users: [
      { id: dispatch, services: ['mcptt'], n2: 3, groups: Object.values(G), remoteChange: true },
      { id: lead, services: ['mcptt'], n2: 3, groups: Object.values(G), remoteChange: { groups: [G.patrol, G.north] } },
      ...people.map((id) => ({ id, services: ['mcptt'], n2: 3, groups: Object.values(G) })),
    ],
    groups: Object.values(G).map((id) => ({ id, services: ['mcptt'], members: [dispatch, ...people] })),
  }, {
    negotiationTimeoutSeconds: 20,
  }));
});

after(async () => {
  await m?.stop();
});


/** A user's event stream over HTTP (the SDK's SSE reader), collected until close(); waits are bounded. */
async function eventsOf(user: string): Promise<{ events: McEvent[]; next: (match: (e: McEvent) => boolean, ms?: number) => Promise<McEvent>; close: () => void }> {
  const client = new MusterClient({ server: m.url(), token: await m.token(user) });
  const abort = new AbortController();
  const events: McEvent[] = [];
  void (async () => {
    try {
      for await (const e of client.events({ signal: abort.signal })) events.push(e);
    } catch {
      /* closed */
    }
  })();
  const next = async (match: (e: McEvent) => boolean, ms = 5000): Promise<McEvent> => {
    for (const deadline = Date.now() + ms; Date.now() < deadline; await new Promise((r) => setTimeout(r, 50))) {
      const found = events.find(match);
      if (found) return found;
    }
    throw new Error(`no such event within ${ms} ms; got ${JSON.stringify(events)}`);
  };
  await new Promise((r) => setTimeout(r, 200)); // the stream is open and its replay done
  return { events, next, close: () => abort.abort() };
}

const changeEvent = (mode: string, target: string) => (e: McEvent): boolean => e.type === 'affiliation-change' && (e.data as { mode?: string; target?: string }).mode === mode && (e.data as { target?: string }).target === target;
const resultOf = (res: { body: unknown }): { target: string; outcome: string; status: unknown[] } => (res.body as { results: { target: string; outcome: string; status: unknown[] }[] }).results[0]!;
const settle = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The mandatory changes a fresh event stream of `user` still replays as waiting, asked again (bounded) until none. */
async function mandatoryChangesWaiting(user: string): Promise<McEvent[]> {
  let waiting: McEvent[] = [];
  for (let i = 0; i < 20; i++) {
    const sse = await eventsOf(user);
    sse.close();
    waiting = sse.events.filter(changeEvent('mandatory', user));
    if (waiting.length === 0) break;
    await settle(100);
  }
  return waiting;
}

/** The target's change-answer audit entries (docs/audit.md), once `count` are stored (bounded wait: stored after the answer). */
async function changeAnswers(user: string, count: number): Promise<{ subject: string; onBehalfOf: string; result: { accept?: boolean; state?: string; via?: string } }[]> {
  for (const end = Date.now() + 5000; ; await new Promise((r) => setTimeout(r, 50))) {
    const audit = await call('GET', `${m.url()}/admin/v1/audit?subject=${encodeURIComponent(user)}`, await m.operatorToken());
    const entries = (audit.body as { entries: { action: string; subject: string; onBehalfOf: string; result: { accept?: boolean; state?: string; via?: string } }[] }).entries.filter((e) => e.action === 'change-answer');
    if (entries.length >= count || Date.now() > end) return entries;
  }
}

void test('(a) a dispatcher MESSAGE asks a negotiated change; the subscribed target gets the command, answers 200, PUBLISHes its new set; the change is accepted, visible over HTTP', async () => {
  const sse = await eventsOf(bob);
  const target = sipp('change-target-accepts.xml', { port: sipPort }, { psi: PSI, user: bob });
  await settle(1500); // the target's subscription and first NOTIFY
  const asked = await sipp('change-message.xml', { port: sipPort }, { psi: PSI, user: dispatch, tgt: bob });
  assert.equal(asked.code, 0, asked.output);
  const run = await target;
  assert.equal(run.code, 0, run.output);
  assert.match(run.messages, /MESSAGE sip:sipp@127\.0\.0\.1:\d+;transport=UDP SIP\/2\.0[\s\S]*Call-ID: 1-\d+@127\.0\.0\.1/, 'the MESSAGE came in the subscription dialog, to its Contact');

  // The same change request, as HTTP/SSE clients see it, is over: accepted and applied.
  const event = await sse.next(changeEvent('negotiated', bob));
  sse.close();
  assert.deepEqual({ actor: (event.data as { actor: string }).actor, affiliate: (event.data as { affiliate: string[] }).affiliate }, { actor: dispatch, affiliate: [G.south] });
  assert.deepEqual(await m.affiliatedGroups(bob), [G.south]);
  const again = await call('POST', `${m.url()}/mc/v1/affiliation-changes/${(event.data as { id: string }).id}/answer`, await m.token(bob), { accept: false });
  assert.equal(again.status, 409, JSON.stringify(again.body));
  assert.match(JSON.stringify(again.body), /already accepted/);
});

void test('(b, c) a MESSAGE without the right is 403, malformed commands are 400 naming the field; nothing is stored', async () => {
  const run = await sipp('change-message-refused.xml', { port: sipPort }, { psi: PSI, user: dispatch, other: carol, tgt: erin });
  assert.equal(run.code, 0, run.output);
  // Nothing waits for erin (a fresh stream replays every change request still waiting), and her groups are as they were.
  const sse = await eventsOf(erin);
  await settle(300);
  sse.close();
  assert.deepEqual(sse.events.filter((e) => e.type === 'affiliation-change'), []);
  assert.deepEqual(await m.affiliatedGroups(erin), []);
});

void test('(d) a mandatory change over HTTP reaches the SIP-subscribed target as a MESSAGE and a NOTIFY; the MESSAGE 200 acknowledges it', async () => {
  const target = sipp('change-notification.xml', { port: sipPort }, { psi: PSI, user: erin });
  await settle(1500);
  const res = await call('POST', `${m.url()}/mc/v1/affiliation-changes`, await m.token(dispatch), { mcServiceId: dispatch, service: 'mcptt', mode: 'mandatory', targets: [erin], affiliate: [G.patrol] });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  assert.equal(resultOf(res).outcome, 'applied');
  const run: SippRun = await target;
  assert.equal(run.code, 0, run.output);
  assert.deepEqual(await mandatoryChangesWaiting(erin), [], 'acknowledged (step 7b): a fresh event stream no longer replays it');
  assert.deepEqual(await m.affiliatedGroups(erin), [G.patrol]);
  const [answer] = await changeAnswers(erin, 1);
  assert.deepEqual(answer && { subject: answer.subject, onBehalfOf: answer.onBehalfOf, accept: answer.result.accept, state: answer.result.state, via: answer.result.via }, { subject: erin, onBehalfOf: erin, accept: true, state: 'acknowledged', via: 'sip-message' }, 'on record as an HTTP answer is');
});

void test('a negotiated change asked over HTTP while the target is offline reaches it as a MESSAGE when it subscribes; its PUBLISH answers the HTTP request', async () => {
  const pending = call('POST', `${m.url()}/mc/v1/affiliation-changes`, await m.token(dispatch), { mcServiceId: dispatch, service: 'mcptt', mode: 'negotiated', targets: [frank], affiliate: [G.south] });
  await settle(500); // stored and waiting; frank has no SIP subscription yet
  const run = await sipp('change-target-accepts.xml', { port: sipPort }, { psi: PSI, user: frank });
  assert.equal(run.code, 0, run.output);
  const res = await pending;
  assert.equal(res.status, 200, JSON.stringify(res.body));
  assert.deepEqual(resultOf(res), { target: frank, outcome: 'applied', status: [{ groupId: G.south, status: 'affiliated' }] });
  assert.deepEqual(await m.affiliatedGroups(frank), [G.south]);
});

void test('over TCP the MESSAGE goes back over the target client\'s own connection, and its PUBLISH on it accepts', async () => {
  const target = sipp('change-target-accepts.xml', { port: sipPort }, { psi: PSI, user: hank }, { transport: 't1' });
  await settle(1500);
  const asked = await sipp('change-message.xml', { port: sipPort }, { psi: PSI, user: dispatch, tgt: hank });
  assert.equal(asked.code, 0, asked.output);
  const run = await target;
  assert.equal(run.code, 0, run.output);
  assert.match(run.messages, /TCP message received \[\d+\] bytes :\s+MESSAGE sip:sipp@127\.0\.0\.1:\d+;transport=TCP SIP\/2\.0/);
  assert.deepEqual(await m.affiliatedGroups(hank), [G.south]);
});

void test('a 603 Decline to the MESSAGE refuses a negotiated change: the HTTP request ends rejected-by-user, nothing applied', async () => {
  const target = sipp('change-target-declines.xml', { port: sipPort }, { psi: PSI, user: gina });
  await settle(1500);
  const res = await call('POST', `${m.url()}/mc/v1/affiliation-changes`, await m.token(dispatch), { mcServiceId: dispatch, service: 'mcptt', mode: 'negotiated', targets: [gina], affiliate: [G.south] });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  assert.equal(resultOf(res).outcome, 'rejected-by-user');
  const run = await target;
  assert.equal(run.code, 0, run.output);
  assert.deepEqual(await m.affiliatedGroups(gina), []);
  const [answer] = await changeAnswers(gina, 1);
  assert.deepEqual(answer && { accept: answer.result.accept, state: answer.result.state, via: answer.result.via }, { accept: false, state: 'rejected', via: 'sip-message' }, 'the 603 on record as an HTTP refusal is');
});

void test("a dispatcher's PUBLISH for another user (mandatory mode) changes that user's groups but not its publication: the target's client refreshes with its own SIP-ETag", async () => {
  const run = await sipp('publish-on-behalf.xml', { port: sipPort }, { psi: PSI, user: ivy, dispatcher: dispatch, group: G.patrol, extra: G.north });
  assert.equal(run.code, 0, run.output);
  assert.deepEqual(await m.affiliatedGroups(ivy), [G.north, G.patrol]);
  const pubs = await call('GET', `${m.url()}/admin/v1/sip/publications?user=${encodeURIComponent(ivy)}`, await m.operatorToken());
  const listed = (pubs.body as { publications: { userId: string; expires: number }[] }).publications;
  assert.deepEqual(listed.map((p) => [p.userId, p.expires]), [[ivy, 600]], "only the target's own publication, refreshed");
  // On record as the dispatcher's act for ivy.
  const audit = await call('GET', `${m.url()}/admin/v1/audit?onBehalfOf=${encodeURIComponent(ivy)}`, await m.operatorToken());
  const entries = (audit.body as { entries: { subject: string; action: string }[] }).entries;
  assert.ok(entries.some((e) => e.subject === dispatch && e.action === 'sip-publish'), JSON.stringify(entries));
});

/** A PUBLISH of `groups` as the set of `served`, sent by `sender` (trusted source: P-Asserted-Identity), and its final response. */
async function publishFor(sender: string, served: string, groups: string[]): Promise<{ status: number; headers: { get(n: string): string | undefined; all(n: string): readonly string[] } }> {
  const c = await UdpClient.open(sipPort);
  try {
    const body =
      `<?xml version="1.0" encoding="UTF-8"?><presence xmlns="urn:ietf:params:xml:ns:pidf" xmlns:mcpttPI10="urn:3gpp:ns:mcpttPresInfo:1.0" entity="${served}">` +
      `<tuple id="dispatch-client"><status>${groups.map((g) => `<mcpttPI10:affiliation group="${g}"/>`).join('')}</status></tuple></presence>`;
    c.send([...c.request({ method: 'PUBLISH', uri: PSI, user: sender, callId: `on-behalf-${served}`, cseq: 1, fromTag: 'd1' }), 'Expires: 600', 'Content-Type: application/pidf+xml'], body);
    return await c.response('PUBLISH');
  } finally {
    c.close();
  }
}

type ChangeData = { id: string; mode: string; actor: string; target: string; service: string; affiliate: string[]; deaffiliate: string[]; status: unknown[] };

void test("a dispatcher's PUBLISH for another user runs the mandatory change of the HTTP API: the target gets an affiliation-change event, the change is on record (its acknowledgement answers the stored statuses), the audit entry names it", async () => {
  const held = await call('POST', `${m.url()}/mc/v1/affiliations`, await m.token(jack), { mcServiceId: jack, service: 'mcptt', groupIds: [G.patrol] });
  assert.equal(held.status, 200, JSON.stringify(held.body));
  const sse = await eventsOf(jack);
  // The set {north} for jack, who holds {patrol}: north to join, patrol to leave.
  const answer = await publishFor(dispatch, jack, [G.north]);
  assert.equal(answer.status, 200);
  assert.equal(answer.headers.get('expires'), '0');
  assert.ok(answer.headers.get('sip-etag'));
  const event = await sse.next(changeEvent('mandatory', jack)).finally(() => sse.close());
  const data = event.data as ChangeData;
  const status = [{ groupId: G.north, status: 'affiliated' }, { groupId: G.patrol, status: 'deaffiliated' }];
  assert.deepEqual({ ...data, id: '' }, { id: '', mode: 'mandatory', actor: dispatch, target: jack, service: 'mcptt', affiliate: [G.north], deaffiliate: [G.patrol], status });
  assert.deepEqual(await m.affiliatedGroups(jack), [G.north]);
  // The change request record: jack acknowledges it (10.X.5.1.1 step 7b) as after an HTTP mandatory change.
  const ack = await call('POST', `${m.url()}/mc/v1/affiliation-changes/${data.id}/answer`, await m.token(jack), { accept: true });
  assert.equal(ack.status, 200, JSON.stringify(ack.body));
  assert.deepEqual(ack.body, { id: data.id, state: 'acknowledged', status });
  const audit = await call('GET', `${m.url()}/admin/v1/audit?onBehalfOf=${encodeURIComponent(jack)}`, await m.operatorToken());
  const entries = (audit.body as { entries: { subject: string; action: string; result: { changeId?: string } }[] }).entries;
  assert.ok(entries.some((e) => e.subject === dispatch && e.action === 'sip-publish' && e.result.changeId === data.id), JSON.stringify(entries));
});

void test('with a right limited to some groups, a PUBLISH on behalf and the same change over HTTP give the same per-group outcome: groups outside the right refused not-authorised (a Warning over SIP), the rest applied', async () => {
  // kate (SIP) and liam (HTTP) hold {south}, outside lead's right; lead wants {patrol} for both: patrol joins, south may not be left.
  for (const user of [kate, liam]) {
    const r = await call('POST', `${m.url()}/mc/v1/affiliations`, await m.token(user), { mcServiceId: user, service: 'mcptt', groupIds: [G.south] });
    assert.equal(r.status, 200, JSON.stringify(r.body));
  }
  const sse = await eventsOf(kate);
  const answer = await publishFor(lead, kate, [G.patrol]);
  assert.equal(answer.status, 200);
  assert.deepEqual(answer.headers.all('warning').map(readRefusalWarning), [{ agent: D, code: 100, text: 'function not allowed due to user authorisation', reason: 'not-authorised', groupId: G.south }]);
  const overSip = (await sse.next(changeEvent('mandatory', kate)).finally(() => sse.close())).data as ChangeData;

  const res = await call('POST', `${m.url()}/mc/v1/affiliation-changes`, await m.token(lead), { mcServiceId: lead, service: 'mcptt', mode: 'mandatory', targets: [liam], affiliate: [G.patrol], deaffiliate: [G.south] });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  const overHttp = resultOf(res);
  assert.deepEqual(overHttp, { target: liam, outcome: 'applied', status: [{ groupId: G.patrol, status: 'affiliated' }, { groupId: G.south, status: 'rejected', reason: 'not-authorised' }] });
  assert.deepEqual({ affiliate: overSip.affiliate, deaffiliate: overSip.deaffiliate, status: overSip.status }, { affiliate: [G.patrol], deaffiliate: [G.south], status: overHttp.status });
  assert.deepEqual(await m.affiliatedGroups(kate), await m.affiliatedGroups(liam));
  assert.deepEqual(await m.affiliatedGroups(kate), [G.patrol, G.south]);
});

void test("a dispatcher's PUBLISH for a SIP-subscribed target reaches it as the MESSAGE and NOTIFY an HTTP mandatory change sends; the MESSAGE 200 acknowledges it", async () => {
  const target = sipp('change-notification.xml', { port: sipPort }, { psi: PSI, user: mona });
  await settle(1500);
  const answer = await publishFor(dispatch, mona, [G.patrol]);
  assert.equal(answer.status, 200);
  const run: SippRun = await target;
  assert.equal(run.code, 0, run.output);
  assert.deepEqual(await mandatoryChangesWaiting(mona), [], "acknowledged (step 7b) by the MESSAGE's 200: a fresh event stream no longer replays it");
  assert.deepEqual(await m.affiliatedGroups(mona), [G.patrol]);
});
