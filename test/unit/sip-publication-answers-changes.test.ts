// TS 24.379 §9.2.1.5 (src/faces/sip/README.md "The target's answer"): alice answers the dispatcher's negotiated
// changes by PUBLISHing a set that fulfils them (acceptChangesByPublication, once the PUBLISH stands). Each change the
// set fulfils is answered on its own: one whose answer fails (the store went away for it) leaves the others accepted
// and their originators told, and the PUBLISH still gets its 200. And what the publication answered is on record as
// the HTTP face records the target's answer: one `change-answer` entry per accepted change (docs/audit.md).
// On a real system (SQLite) in the test's own process; the fault is one store method replaced on this server's view.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import type { McUri } from '../../src/domain/ids.ts';
import type { ChangeRequest, ChangeTargetResult } from '../../src/domain/flows.ts';
import type { McSystem } from '../../src/system.ts';
import { AuditRecorder } from '../../src/adapters/audit-recorder.ts';
import { MusterError } from '../../src/domain/errors.ts';
import { parseMessage } from '../../src/faces/sip/parser.ts';
import type { IncomingRequest } from '../../src/faces/sip/message.ts';
import type { Flow } from '../../src/faces/sip/transport.ts';
import type { SipFaceContext } from '../../src/faces/sip/face-context.ts';
import { Publications } from '../../src/faces/sip/publication-state.ts';
import { publishUas } from '../../src/faces/sip/publish-user-agent-server.ts';
import { answerChange, remoteChangeNegotiated } from '../../src/procedures/remote-change-negotiated.ts';
import { policeId, policeSystem, withSystem } from '../support/in-process.ts';
import { deferred, storeView } from '../support/two-instances.ts';

const alice = policeId('alice');
const dispatch = policeId('dispatch');
const patrol = policeId('patrol');
const north = policeId('north');
const south = policeId('south');
const PSI = policeId('mc-server');

const SYSTEM = policeSystem({
  users: [
    { id: alice, services: ['mcptt'], n2: 3, groups: [patrol, north, south] },
    // TS 24.379 §9.2.1.4: a dispatcher with the remote-change right over alice's groups.
    { id: dispatch, services: ['mcptt'], n2: 3, groups: [], remoteChange: { groups: [patrol, north, south] } },
  ],
  groups: [patrol, north, south].map((id) => ({ id, services: ['mcptt'], members: [alice] })),
});

/** The SIP face's context on this system's server, whose store is a view the test may replace methods on. */
function faceOf(system: McSystem): SipFaceContext {
  const server = { ...system.server, store: storeView(system.server.store) };
  return {
    server,
    psi: PSI,
    trustedPeers: ['127.0.0.1'],
    agent: server.domain,
    publications: new Publications(server.store, server.clock),
    senderRate: { take: () => 0 },
    audit: new AuditRecorder(server.store, pino({ level: 'silent' })),
    exclusive: <T>(_u: McUri, fn: () => Promise<T>): Promise<T> => fn(),
    notifyWatchers: () => undefined,
  } as unknown as SipFaceContext;
}

const flow: Flow = { transport: 'udp', remoteAddress: '127.0.0.1', remotePort: 5070, send: () => undefined, open: () => true };
let requests = 0;

/** Alice's own PUBLISH of `groups` (TS 24.379 §9.2.1.2) from a trusted peer with P-Asserted-Identity. */
function publish(groups: McUri[]): IncomingRequest {
  const n = ++requests;
  const body = Buffer.from(
    '<?xml version="1.0" encoding="UTF-8"?><presence xmlns="urn:ietf:params:xml:ns:pidf" xmlns:mcpttPI10="urn:3gpp:ns:mcpttPresInfo:1.0" entity="sip:alice@police.example">' +
      `<tuple id="client-1"><status>${groups.map((g) => `<mcpttPI10:affiliation group="${g}"/>`).join('')}</status></tuple><mcpttPI10:p-id>pub-${n}</mcpttPI10:p-id></presence>`,
  );
  const head = [
    `PUBLISH ${PSI} SIP/2.0`,
    `Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-answers-${n}`,
    `From: <${alice}>;tag=p${n}`,
    `To: <${PSI}>`,
    `Call-ID: answers-${n}`,
    `CSeq: ${n} PUBLISH`,
    'Max-Forwards: 70',
    `P-Asserted-Identity: <${alice}>`,
    'P-Preferred-Service: urn:urn-7:3gpp-service.ims.icsi.mcptt',
    'Event: presence',
    'Expires: 3600',
    'Content-Type: application/pidf+xml',
    `Content-Length: ${body.length}`,
  ];
  const msg = parseMessage(Buffer.concat([Buffer.from(head.join('\r\n') + '\r\n\r\n'), body]));
  assert.equal(msg.kind, 'request');
  return msg;
}

/** TS 24.379 §9.2.1.4: the dispatcher asks alice to join `group` and waits for her answer; resolves once it is stored. */
async function ask(ctx: SipFaceContext, id: string, group: McUri): Promise<{ outcome: Promise<ChangeTargetResult[]>; told: () => boolean }> {
  const asked = deferred();
  let told = false;
  const change: ChangeRequest = { mcServiceId: dispatch, service: 'mcptt', mode: 'negotiated', targets: [alice], affiliate: [group], deaffiliate: [] };
  const outcome = remoteChangeNegotiated(ctx.server, change, id, asked.resolve).finally(() => (told = true));
  await asked.promise;
  return { outcome, told: () => told };
}

/** The next answer (transition to `accepted`) of any change at this view fails as a store that went away; returns whose. */
function failNextAcceptance(ctx: SipFaceContext): { failed?: string } {
  const store = ctx.server.store;
  const original = store.transitionChange.bind(store);
  const seen: { failed?: string } = {};
  store.transitionChange = async (id, target, from, to, result) => {
    if (to !== 'accepted' || result !== undefined) return original(id, target, from, to, result);
    store.transitionChange = original;
    seen.failed = id;
    throw new MusterError('unavailable', 'store unavailable: test');
  };
  return seen;
}

const held = async (ctx: SipFaceContext): Promise<string[]> =>
  (await ctx.server.store.affiliationsOfUser(alice, 'mcptt'))
    .filter((r) => r.state === 'affiliated')
    .map((r) => r.groupId)
    .sort();

void test('one PUBLISH fulfils two negotiated changes and the answer to the first fails: the second is still accepted and its originator told, the 200 still goes', async () => {
  await withSystem(SYSTEM, async (system) => {
    const ctx = faceOf(system);
    assert.equal((await publishUas(ctx, publish([patrol]), flow)).status, 200);
    const joinNorth = await ask(ctx, 'join-north', north);
    const joinSouth = await ask(ctx, 'join-south', south);
    const fault = failNextAcceptance(ctx);

    assert.equal((await publishUas(ctx, publish([patrol, north, south]), flow)).status, 200, 'the PUBLISH stands: its 200 goes');
    assert.ok(fault.failed, 'one answer was made to fail');
    const [failed, other] = fault.failed === 'join-north' ? [joinNorth, joinSouth] : [joinSouth, joinNorth];
    const otherId = fault.failed === 'join-north' ? 'join-south' : 'join-north';
    const otherGroup = otherId === 'join-north' ? north : south;

    assert.equal((await ctx.server.store.getChange(otherId, alice))?.state, 'accepted', 'the other change is answered despite the failure before it');
    assert.deepEqual(await other.outcome, [{ target: alice, outcome: 'applied', status: [{ groupId: otherGroup, status: 'affiliated' }] }], 'its originator is told');
    assert.equal((await ctx.server.store.getChange(fault.failed, alice))?.state, 'asked', 'the failed one waits (for its timeout, or the next PUBLISH)');
    assert.equal(failed.told(), false);
    assert.deepEqual(await held(ctx), [north, patrol, south], 'the set stands');

    // Not left waiting for the timeout: alice declines it over HTTP's procedure, so its request ends here.
    await answerChange(ctx.server, alice, fault.failed, false);
    assert.equal((await failed.outcome)[0]?.outcome, 'rejected-by-user');
  });
});

void test("the changes a PUBLISH answered are on record as the HTTP answer records them: a change-answer entry each, alice's, accepted", async () => {
  await withSystem(SYSTEM, async (system) => {
    const ctx = faceOf(system);
    assert.equal((await publishUas(ctx, publish([patrol]), flow)).status, 200);
    const joinNorth = await ask(ctx, 'join-north', north);
    const joinSouth = await ask(ctx, 'join-south', south);
    const since = ctx.server.clock.now();

    assert.equal((await publishUas(ctx, publish([patrol, north, south]), flow)).status, 200);
    await Promise.all([joinNorth.outcome, joinSouth.outcome]);

    const entries = await ctx.server.store.queryAudit({ onBehalfOf: alice, since, limit: 100 });
    const publishEntry = entries.find((e) => e.action === 'sip-publish');
    assert.ok(publishEntry, "the PUBLISH's own entry");
    const answers = entries.filter((e) => e.action === 'change-answer').map(({ id: _id, at: _at, ...e }) => e);
    assert.deepEqual(
      answers.sort((x, y) => String(x.groups[0]).localeCompare(String(y.groups[0]))),
      [
        ['join-north', north],
        ['join-south', south],
      ].map(([changeId, group]) => ({
        subject: alice,
        role: 'user',
        onBehalfOf: alice,
        action: 'change-answer',
        service: null,
        groups: [group],
        httpStatus: 200,
        errorCode: null,
        result: { changeId, accept: true, state: 'accepted', status: [{ groupId: group, status: 'affiliated' }], via: 'sip-publish' },
      })),
      'one entry per change the PUBLISH answered, shaped as the HTTP answer route records it, naming the PUBLISH as the answer',
    );
  });
});
