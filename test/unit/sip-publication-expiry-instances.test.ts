// RFC 3903 §6 expiry (expirePublication) racing the client's new PUBLISH (publishUas) on another instance of the same
// system: two instances on one PostgreSQL store (two McSystems in this process, each with its own per-user lock),
// and the same on one SQLite store with two face contexts. The interleaving is forced with gates in the publication
// rows, in the affiliation writes and in a stand-in partner system, never with timing: the user's new publication must
// end with its groups held, whichever side finishes last, a partner's group included. And a PUBLISH that fails after
// it wrote something undoes it without overwriting what another instance wrote meanwhile. An expiry or an undo that
// finds a newer publication follows it as a PUBLISH's re-check does: exactly its set, and the next one stored meanwhile.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import type { McUri } from '../../src/domain/ids.ts';
import type { ChangeRequest } from '../../src/domain/flows.ts';
import type { McSystem } from '../../src/system.ts';
import { AuditRecorder } from '../../src/adapters/audit-recorder.ts';
import { parseMessage } from '../../src/faces/sip/parser.ts';
import type { IncomingRequest } from '../../src/faces/sip/message.ts';
import type { Flow } from '../../src/faces/sip/transport.ts';
import type { SipFaceContext } from '../../src/faces/sip/face-context.ts';
import { Publications, type PublicationRows } from '../../src/faces/sip/publication-state.ts';
import { expirePublication, publishUas } from '../../src/faces/sip/publish-user-agent-server.ts';
import { remoteChangeNegotiated } from '../../src/procedures/remote-change-negotiated.ts';
import { MusterError } from '../../src/domain/errors.ts';
import { SipRefusal } from '../../src/faces/sip/sip-refusal.ts';
import type { ClientEvent, Store } from '../../src/ports/store.ts';
import { systemClock, type Clock } from '../../src/ports/clock.ts';
import { policeId, policeSystem } from '../support/in-process.ts';
import { standInPartners } from '../support/stand-in-partners.ts';
import { deferred, holdNextGroupsRead, twoInstancesOf } from '../support/two-instances.ts';

const alice = policeId('alice');
const patrol = policeId('patrol');
const north = policeId('north');
const engine = 'sip:engine@fire.example' as McUri;
const PSI = policeId('mc-server');
const dispatch = policeId('dispatch');

/** One instance as the SIP face sees it: its server, its own per-user lock, and publication rows a test can hold. */
interface Instance {
  ctx: SipFaceContext;
  /** Armed: the next claim (removal under an entity-tag) resolves `claimed` once done, then waits for `open`. */
  holdAfterClaim?: { claimed: () => void; open: Promise<void> };
  /** Armed: the next publication write waits for `open` before it reaches the store. */
  holdBeforePut?: Promise<void>;
  /** Armed: the next publication write (after any hold) fails as a store that went away does. */
  failPut?: true;
  /** Armed: called once the next publication write reached the store. */
  afterPut?: () => void;
  /** Armed: called once the next publication read returned. */
  afterGet?: () => void;
}

/** The instances' clock: the system's, moved on by `pass` (an expiry is claimed only once its time has passed). */
interface TestClock extends Clock {
  pass(ms: number): void;
}

function testClock(): TestClock {
  let ahead = 0;
  return { now: () => systemClock.now() + ahead, after: (ms, fire) => systemClock.after(ms, fire), pass: (ms) => void (ahead += ms) };
}

function instance(system: McSystem, partner: FirePartner, clock: TestClock): Instance {
  const server = { ...system.server, partners: partner.port, clock };
  const inst: Instance = { ctx: undefined as unknown as SipFaceContext };
  const rows: PublicationRows = {
    getSipPublication: async (u, s, now) => {
      const pub = await server.store.getSipPublication(u, s, now);
      const got = inst.afterGet;
      inst.afterGet = undefined;
      got?.();
      return pub;
    },
    expiredSipPublications: (now, limit) => server.store.expiredSipPublications(now, limit),
    putSipPublication: async (pub, replacing) => {
      const hold = inst.holdBeforePut;
      inst.holdBeforePut = undefined;
      if (hold) await hold;
      const fail = inst.failPut;
      inst.failPut = undefined;
      if (fail) throw storeGone();
      const outcome = await server.store.putSipPublication(pub, replacing);
      const put = inst.afterPut;
      inst.afterPut = undefined;
      put?.();
      return outcome;
    },
    removeSipPublication: async (u, s, etag) => {
      const removed = await server.store.removeSipPublication(u, s, etag);
      const hold = inst.holdAfterClaim;
      inst.holdAfterClaim = undefined;
      if (hold) {
        hold.claimed();
        await hold.open;
      }
      return removed;
    },
  };
  // The face's per-user lock (user-agent-core.ts): one map per instance, so it orders nothing between the two.
  const locks = new Map<McUri, Promise<unknown>>();
  const exclusive = <T>(u: McUri, fn: () => Promise<T>): Promise<T> => {
    const run = (locks.get(u) ?? Promise.resolve()).then(fn, fn);
    locks.set(u, run.catch(() => undefined));
    return run;
  };
  inst.ctx = {
    server,
    psi: PSI,
    trustedPeers: ['127.0.0.1'],
    agent: server.domain,
    publications: new Publications(rows, server.clock),
    senderRate: { take: () => 0 },
    audit: new AuditRecorder(server.store, pino({ level: 'silent' })),
    exclusive,
    notifyWatchers: () => undefined,
  } as unknown as SipFaceContext;
  return inst;
}

/** What an adapter throws when its database went away (sqlite-group-commit.ts, postgres-pool.ts). */
const storeGone = (): MusterError => new MusterError('unavailable', 'store unavailable: test');

/**
 * The `nth` affiliation write from now (1: the next) at `inst`'s store fails as a store that went away does, after
 * `asked` was called and `open` resolved when given. On SQLite both instances share the store: arm it when only one acts.
 */
function failAffiliationWrite(inst: Instance, nth: number, gate?: { asked: () => void; open: Promise<void> }): void {
  const store = inst.ctx.server.store;
  const original = store.changeAffiliations.bind(store);
  let count = 0;
  store.changeAffiliations = async function <T>(...args: Parameters<Store['changeAffiliations']>): Promise<{ result: T; events: ClientEvent[] }> {
    if (++count < nth) return original(...args) as Promise<{ result: T; events: ClientEvent[] }>;
    store.changeAffiliations = original;
    gate?.asked();
    await gate?.open;
    throw storeGone();
  };
}

/** Resolves once the next affiliation write at `inst`'s store is done. */
function affiliationWritten(inst: Instance): Promise<void> {
  const store = inst.ctx.server.store;
  const original = store.changeAffiliations.bind(store);
  return new Promise((resolve) => {
    store.changeAffiliations = async function <T>(...args: Parameters<Store['changeAffiliations']>): Promise<{ result: T; events: ClientEvent[] }> {
      store.changeAffiliations = original;
      try {
        return (await original(...args)) as { result: T; events: ClientEvent[] };
      } finally {
        resolve();
      }
    };
  });
}

const unavailable = (e: unknown): boolean => e instanceof MusterError && e.code === 'unavailable';

const flow: Flow = { transport: 'udp', remoteAddress: '127.0.0.1', remotePort: 5070, send: () => undefined, open: () => true };
let requests = 0;

/**
 * Alice's own initial PUBLISH of `groups` (TS 24.379 §9.2.1.2), from a trusted peer with P-Asserted-Identity; null:
 * her `Expires: 0` without a body, which removes her publication (RFC 3903 §4.5).
 */
function publish(groups: McUri[] | null, ifMatch?: string, sender: McUri = alice): IncomingRequest {
  const n = ++requests;
  const body = Buffer.from(
    groups === null
      ? ''
      : '<?xml version="1.0" encoding="UTF-8"?><presence xmlns="urn:ietf:params:xml:ns:pidf" xmlns:mcpttPI10="urn:3gpp:ns:mcpttPresInfo:1.0" entity="sip:alice@police.example">' +
          `<tuple id="client-1"><status>${groups.map((g) => `<mcpttPI10:affiliation group="${g}"/>`).join('')}</status></tuple><mcpttPI10:p-id>pub-${n}</mcpttPI10:p-id></presence>`,
  );
  const head = [
    `PUBLISH ${PSI} SIP/2.0`,
    `Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-race-${n}`,
    `From: <${sender}>;tag=p${n}`,
    `To: <${PSI}>`,
    `Call-ID: race-${n}`,
    `CSeq: ${n} PUBLISH`,
    'Max-Forwards: 70',
    `P-Asserted-Identity: <${sender}>`,
    'P-Preferred-Service: urn:urn-7:3gpp-service.ims.icsi.mcptt',
    'Event: presence',
    `Expires: ${groups === null ? 0 : 3600}`,
    ...(ifMatch ? [`SIP-If-Match: ${ifMatch}`] : []),
    ...(groups === null ? [] : ['Content-Type: application/pidf+xml']),
    `Content-Length: ${body.length}`,
  ];
  const msg = parseMessage(Buffer.concat([Buffer.from(head.join('\r\n') + '\r\n\r\n'), body]));
  assert.equal(msg.kind, 'request');
  return msg;
}

const held = async (inst: Instance): Promise<string[]> =>
  (await inst.ctx.server.store.affiliationsOfUser(alice, 'mcptt'))
    .filter((r) => r.state === 'affiliated')
    .map((r) => r.groupId)
    .sort();

const etagOf = (headers: [string, string][]): string | undefined => headers.find(([k]) => k === 'SIP-ETag')?.[1];

const SYSTEM = policeSystem({
  // The configured partner is replaced by FirePartner in each instance's server; this entry makes fire.example one.
  partners: [{ domain: 'fire.example', url: 'http://127.0.0.1:9', secret: 'shared' }],
  users: [
    { id: alice, services: ['mcptt'], n2: 3, groups: [patrol, north, engine] },
    // A dispatcher with the mandatory remote-change right (TS 24.379 §9.2.1.4) over alice's groups.
    { id: dispatch, services: ['mcptt'], n2: 3, groups: [], remoteChange: { groups: [patrol, north, engine] } },
  ],
  groups: [patrol, north].map((id) => ({ id, services: ['mcptt'], members: [alice] })),
});

/** fire.example, host of `engine`, as both instances reach it: it holds what it was told, and a leave can be held. */
interface FirePartner {
  port: ReturnType<typeof standInPartners>;
  holds: Set<McUri>;
  /** Armed: the next de-affiliation resolves `asked` when it arrives, then waits for `open`; `unanswered`: then fails. */
  holdLeave?: { asked: () => void; open: Promise<void>; unanswered?: true };
}

function firePartner(): FirePartner {
  const partner: FirePartner = { port: undefined as unknown as FirePartner['port'], holds: new Set() };
  partner.port = standInPartners('fire.example', {
    affiliate: async (req) => req.groupIds.map((groupId) => (partner.holds.add(groupId), { groupId, status: 'affiliated' as const })),
    deaffiliate: async (req) => {
      const hold = partner.holdLeave;
      partner.holdLeave = undefined;
      if (hold) {
        hold.asked();
        await hold.open;
        if (hold.unanswered) return req.groupIds.map((groupId) => ({ groupId, status: 'rejected' as const, reason: 'partner-unreachable' as const }));
      }
      return req.groupIds.map((groupId) => (partner.holds.delete(groupId), { groupId, status: 'deaffiliated' as const }));
    },
  });
  return partner;
}

/** Instance A and instance B of police.example on one store: two systems on one PostgreSQL database, or one SQLite system. */
async function twoInstances(kind: 'postgres' | 'sqlite', work: (a: Instance, b: Instance, fire: FirePartner, clock: TestClock) => Promise<void>): Promise<void> {
  await twoInstancesOf(kind, SYSTEM, async (a, b) => {
    const fire = firePartner();
    const clock = testClock();
    await work(instance(a, fire, clock), instance(b, fire, clock), fire, clock);
  });
}

/** Alice publishes {patrol, north} through A; that publication is the one that expires. */
async function publishedThroughA(a: Instance): Promise<NonNullable<Awaited<ReturnType<Publications['get']>>>> {
  const first = await publishUas(a.ctx, publish([patrol, north]), flow);
  assert.equal(first.status, 200);
  assert.deepEqual(await held(a), [north, patrol]);
  const pub = await a.ctx.publications.get(alice, 'mcptt');
  assert.ok(pub, 'the first publication is stored');
  return pub;
}

for (const kind of ['postgres', 'sqlite'] as const) {
  void describe(`expiry on instance A against a new PUBLISH on instance B (${kind})`, () => {
    void test('A claims the expired publication, B accepts the same set before A has left the groups: the groups stay', async () => {
      await twoInstances(kind, async (a, b) => {
        const expired = await publishedThroughA(a);
        const claimed = deferred();
        const open = deferred();
        a.holdAfterClaim = { claimed: claimed.resolve, open: open.promise };
        const expiry = expirePublication(a.ctx, expired);
        await claimed.promise; // A removed the publication under its entity-tag and has not left any group yet.

        const answer = await publishUas(b.ctx, publish([patrol, north]), flow);
        assert.equal(answer.status, 200);
        open.resolve();
        await expiry;

        const live = await b.ctx.publications.get(alice, 'mcptt');
        assert.equal(live?.etag, etagOf(answer.headers), "B's publication is the live one");
        assert.deepEqual(await held(b), [north, patrol], "a live publication's groups are held");
      });
    });

    void test('B reads the groups held, A then leaves them all, then B stores its publication: the groups come back', async () => {
      await twoInstances(kind, async (a, b) => {
        const expired = await publishedThroughA(a);
        const read = deferred();
        const open = deferred();
        b.holdBeforePut = open.promise;
        // B's set difference is computed against the groups still held (nothing to change), then B waits to store.
        holdNextGroupsRead(b.ctx.server.store, { when: 'after', reached: read.resolve });
        const answering = publishUas(b.ctx, publish([patrol, north]), flow);
        await read.promise;

        await expirePublication(a.ctx, expired);
        assert.deepEqual(await held(a), [], 'A left every group: no publication was stored when it looked');
        open.resolve();
        const answer = await answering;
        assert.equal(answer.status, 200);

        const live = await b.ctx.publications.get(alice, 'mcptt');
        assert.equal(live?.etag, etagOf(answer.headers), "B's publication is the live one");
        assert.deepEqual(await held(b), [north, patrol], "a live publication's groups are held");
      });
    });

    void test("A asks the partner to drop its group, B's PUBLISH is answered meanwhile (the group still held), then A drops it: it comes back", async () => {
      await twoInstances(kind, async (a, b, fire) => {
        const first = await publishUas(a.ctx, publish([patrol, engine]), flow);
        assert.equal(first.status, 200);
        assert.deepEqual(await held(a), [engine, patrol]);
        const expired = await a.ctx.publications.get(alice, 'mcptt');
        assert.ok(expired);
        const asked = deferred();
        const open = deferred();
        fire.holdLeave = { asked: asked.resolve, open: open.promise };
        const expiry = expirePublication(a.ctx, expired);
        await asked.promise; // A left patrol, and waits for fire.example to drop engine (10.X.4.3 step 3).

        const answer = await publishUas(b.ctx, publish([patrol, engine]), flow);
        assert.equal(answer.status, 200);
        assert.deepEqual(await held(b), [engine, patrol], 'B took patrol again and found engine still held');
        open.resolve();
        await expiry;

        const live = await b.ctx.publications.get(alice, 'mcptt');
        assert.equal(live?.etag, etagOf(answer.headers), "B's publication is the live one");
        assert.deepEqual(await held(b), [engine, patrol], "a live publication's groups are held, the partner's too");
        assert.ok(fire.holds.has(engine), 'and fire.example holds the user in engine again');
      });
    });

    void test("B's set joins north while A's expiry leaves every group, B's re-check takes them back: B's audit entry lists what the re-check affiliated", async () => {
      await twoInstances(kind, async (a, b) => {
        assert.equal((await publishUas(a.ctx, publish([patrol]), flow)).status, 200);
        const expired = await a.ctx.publications.get(alice, 'mcptt');
        assert.ok(expired);
        const read = deferred();
        const open = deferred();
        b.holdBeforePut = open.promise;
        holdNextGroupsRead(b.ctx.server.store, { when: 'after', reached: read.resolve });
        const joined = affiliationWritten(b);
        const answering = publishUas(b.ctx, publish([patrol, north]), flow);
        await Promise.all([read.promise, joined]); // B found patrol held and joined north, with its audit entry.

        await expirePublication(a.ctx, expired);
        assert.deepEqual(await held(a), [], 'A left patrol and north');
        open.resolve();
        assert.equal((await answering).status, 200);
        assert.deepEqual(await held(b), [north, patrol]);

        const entries = await b.ctx.server.store.queryAudit({ onBehalfOf: alice, limit: 10 });
        const last = entries.at(-1)!;
        assert.equal(last.httpStatus, 200);
        const status = (last.result as { status: { groupId: string; status: string }[] }).status.map((s) => `${s.groupId}=${s.status}`).sort();
        assert.deepEqual(status, [`${north}=affiliated`, `${patrol}=affiliated`], "B's entry has what its 200 and NOTIFY said, the re-check's groups too");
        assert.deepEqual([...(last.result as { regained: string[] }).regained].sort(), [north, patrol], 'and names them');
        // A's PUBLISH, then B's: the entry stored with its set's change (north), then the one stored with its re-check.
        assert.deepEqual(entries.map((e) => e.httpStatus), [200, 200, 200]);
        assert.deepEqual((entries[1]!.result as { status: unknown }).status, [{ groupId: north, status: 'affiliated' }]);
      });
    });

    void test("A's partner does not answer, so A would bring the expired publication back: B's new one stays instead", async () => {
      await twoInstances(kind, async (a, b, fire) => {
        assert.equal((await publishUas(a.ctx, publish([patrol, engine]), flow)).status, 200);
        const expired = await a.ctx.publications.get(alice, 'mcptt');
        assert.ok(expired);
        const asked = deferred();
        const open = deferred();
        fire.holdLeave = { asked: asked.resolve, open: open.promise, unanswered: true };
        const expiry = expirePublication(a.ctx, expired);
        await asked.promise;

        const answer = await publishUas(b.ctx, publish([patrol, engine]), flow);
        assert.equal(answer.status, 200);
        open.resolve(); // fire.example does not answer: engine could not be left, a retry is due.
        await expiry;

        const live = await b.ctx.publications.get(alice, 'mcptt');
        assert.equal(live?.etag, etagOf(answer.headers), "B's publication is the live one, not the expired one back");
        assert.deepEqual(await held(b), [engine, patrol]);
      });
    });

    void test("A's expiry finds B's {patrol, north} stored since its claim, B's whole PUBLISH of {patrol} runs before A follows it: A follows the live one too, exactly {patrol} is held", async () => {
      await twoInstances(kind, async (a, b) => {
        const expired = await publishedThroughA(a);
        const claimed = deferred();
        const open = deferred();
        a.holdAfterClaim = { claimed: claimed.resolve, open: open.promise };
        const expiry = expirePublication(a.ctx, expired);
        await claimed.promise;
        assert.equal((await publishUas(b.ctx, publish([patrol, north]), flow)).status, 200);

        // Once A has left every group and read B's publication, its next read of the groups waits for B's next PUBLISH.
        const reached = deferred();
        const following = deferred();
        a.afterGet = () => holdNextGroupsRead(a.ctx.server.store, { when: 'before', reached: reached.resolve, open: following.promise });
        open.resolve();
        await reached.promise;
        assert.deepEqual(await held(a), [], 'A left every group');

        const answer = await publishUas(b.ctx, publish([patrol]), flow);
        assert.equal(answer.status, 200);
        assert.deepEqual(await held(b), [patrol], "B's second set, and its publication live");
        following.resolve();
        await expiry;

        const live = await a.ctx.publications.get(alice, 'mcptt');
        assert.equal(live?.etag, etagOf(answer.headers), "B's second publication is the live one");
        assert.deepEqual(await held(a), [patrol], "A wrote the set it read, read the live publication again and followed it: north left, not kept beside patrol");
      });
    });
  });

  void describe(`two PUBLISHes of different sets on instances A and B (${kind})`, () => {
    void test("A read alice's groups (none), B's PUBLISH of another set was answered before A wrote: A's set is held, nothing of B's", async () => {
      await twoInstances(kind, async (a, b) => {
        const read = deferred();
        const open = deferred();
        // A's first read of alice's groups is held once done (on SQLite the store is shared: B's reads pass), and its
        // publication waits with it, so A's is stored last.
        holdNextGroupsRead(a.ctx.server.store, { when: 'after', reached: read.resolve, open: open.promise });
        a.holdBeforePut = open.promise;
        const answering = publishUas(a.ctx, publish([north]), flow);
        await read.promise; // A found no group held; it has written nothing yet.

        assert.equal((await publishUas(b.ctx, publish([patrol]), flow)).status, 200);
        assert.deepEqual(await held(b), [patrol]);
        open.resolve();
        const answer = await answering;
        assert.equal(answer.status, 200);

        const live = await a.ctx.publications.get(alice, 'mcptt');
        assert.equal(live?.etag, etagOf(answer.headers), "A's publication, stored last, is the live one");
        assert.deepEqual(await held(a), [north], "and exactly its set is held: B's patrol left, A's north joined");
      });
    });
    void test("A's set is written, B's whole PUBLISH of another set runs, then A stores its publication (the live one): exactly A's set is held", async () => {
      await twoInstances(kind, async (a, b) => {
        assert.equal((await publishUas(a.ctx, publish([patrol]), flow)).status, 200);
        const written = affiliationWritten(a);
        const open = deferred();
        a.holdBeforePut = open.promise;
        const answering = publishUas(a.ctx, publish([north]), flow);
        await written; // A left patrol and joined north; its publication waits to be written.

        assert.equal((await publishUas(b.ctx, publish([patrol]), flow)).status, 200);
        assert.deepEqual(await held(b), [patrol], "B's set, and B's publication live");
        open.resolve();
        const answer = await answering;
        assert.equal(answer.status, 200);

        const live = await a.ctx.publications.get(alice, 'mcptt');
        assert.equal(live?.etag, etagOf(answer.headers), "A's publication, stored last over B's, is the live one");
        assert.deepEqual(await held(a), [north], "so exactly its set is held: B's patrol left, not kept beside north");
      });
    });

    void test("A stores its publication, B's whole PUBLISH runs before A's re-check reads the groups: A's re-check follows B's publication, now the live one (a second round)", async () => {
      await twoInstances(kind, async (a, b) => {
        assert.equal((await publishUas(a.ctx, publish([patrol]), flow)).status, 200);
        const reached = deferred();
        const open = deferred();
        // Once A's publication is stored, the next read of the groups (A's re-check) waits for B's PUBLISH, then reads.
        a.afterPut = () => {
          holdNextGroupsRead(a.ctx.server.store, { when: 'before', reached: reached.resolve, open: open.promise });
        };
        const answering = publishUas(a.ctx, publish([north]), flow);
        await reached.promise; // A holds north and its publication is live; its re-check has not read yet.

        const answer = await publishUas(b.ctx, publish([patrol]), flow);
        assert.equal(answer.status, 200);
        assert.deepEqual(await held(b), [patrol], "B's set, and B's publication live");
        open.resolve();
        assert.equal((await answering).status, 200);

        const live = await a.ctx.publications.get(alice, 'mcptt');
        assert.equal(live?.etag, etagOf(answer.headers), "B's publication, stored after A's, is the live one");
        assert.deepEqual(await held(a), [patrol], "A's re-check wrote its own set, read the live publication again and followed B's");
      });
    });
  });

  void describe(`a dispatcher's PUBLISH on alice's behalf on instance A against alice's own PUBLISH on instance B (${kind})`, () => {
    void test("A read alice's groups (none) for the dispatcher's {north}, alice's {patrol} was answered at B before A wrote: exactly the dispatcher's set is held", async () => {
      await twoInstances(kind, async (a, b) => {
        const read = deferred();
        const open = deferred();
        holdNextGroupsRead(a.ctx.server.store, { when: 'after', reached: read.resolve, open: open.promise });
        const answering = publishUas(a.ctx, publish([north], undefined, dispatch), flow);
        await read.promise; // A found no group of alice's held; it has written nothing yet.

        assert.equal((await publishUas(b.ctx, publish([patrol]), flow)).status, 200);
        assert.deepEqual(await held(b), [patrol]);
        open.resolve();
        assert.equal((await answering).status, 200);

        assert.deepEqual(await held(a), [north], "the dispatcher's set, written last, replaces alice's: patrol left, not kept beside north");
        const told = (await a.ctx.server.store.queryAudit({ onBehalfOf: alice, limit: 10 })).at(-1);
        assert.deepEqual(((told?.result as { status: { groupId: string; status: string }[] }).status).map((x) => `${x.groupId}=${x.status}`).sort(), [`${north}=affiliated`, `${patrol}=deaffiliated`]);
      });
    });
  });

  void describe(`a PUBLISH on instance B that fails after writing, against a PUBLISH on instance A meanwhile (${kind})`, () => {
    void test("B stored its publication, then its set change fails; A stored a newer one meanwhile: B's undo does not put the old one back over A's", async () => {
      await twoInstances(kind, async (a, b) => {
        await publishedThroughA(a);
        const asked = deferred();
        const open = deferred();
        const stored = deferred();
        b.afterPut = stored.resolve;
        failAffiliationWrite(b, 1, { asked: asked.resolve, open: open.promise });
        const failing = publishUas(b.ctx, publish([patrol]), flow);
        await Promise.all([asked.promise, stored.promise]); // B's publication is stored; its leaving north waits.

        const answer = await publishUas(a.ctx, publish([patrol, north]), flow);
        assert.equal(answer.status, 200);
        open.resolve();
        await assert.rejects(failing, unavailable);

        const live = await a.ctx.publications.get(alice, 'mcptt');
        assert.equal(live?.etag, etagOf(answer.headers), "A's publication, the newest, is the live one");
        assert.deepEqual(await held(a), [north, patrol]);
      });
    });

    void test("B's Expires: 0 removed the publication, then leaving the groups fails; A stored a new one meanwhile: B's undo does not put the old one back over it", async () => {
      await twoInstances(kind, async (a, b) => {
        await publishedThroughA(a);
        const asked = deferred();
        const open = deferred();
        const removed = deferred();
        b.holdAfterClaim = { claimed: removed.resolve, open: Promise.resolve() };
        failAffiliationWrite(b, 1, { asked: asked.resolve, open: open.promise });
        const failing = publishUas(b.ctx, publish(null), flow);
        await Promise.all([asked.promise, removed.promise]); // B removed the publication; its leaving the groups waits.

        const answer = await publishUas(a.ctx, publish([patrol, north]), flow);
        assert.equal(answer.status, 200);
        open.resolve();
        await assert.rejects(failing, unavailable);

        const live = await a.ctx.publications.get(alice, 'mcptt');
        assert.equal(live?.etag, etagOf(answer.headers), "A's publication, stored after B's removal, is the live one");
        assert.deepEqual(await held(a), [north, patrol]);
      });
    });
  });

  void describe(`a modification (SIP-If-Match) on instance A against a newer publication on instance B (${kind})`, () => {
    void test("A read the entity-tag and left north, B replaced that publication meanwhile: A's write is 412, its change undone, B's publication stands", async () => {
      await twoInstances(kind, async (a, b) => {
        const first = await publishedThroughA(a);
        const left = affiliationWritten(a);
        const open = deferred();
        a.holdBeforePut = open.promise;
        const modifying = publishUas(a.ctx, publish([patrol], first.etag), flow);
        await left; // A matched the entity-tag and left north; its publication waits to be written.

        const answer = await publishUas(b.ctx, publish([patrol, north], first.etag), flow);
        assert.equal(answer.status, 200, 'B matched the same entity-tag first');
        open.resolve();
        // The entity-tag A matched is gone when A writes (RFC 3903 §6 step 4).
        await assert.rejects(modifying, (e: unknown) => e instanceof SipRefusal && e.status === 412);

        const live = await a.ctx.publications.get(alice, 'mcptt');
        assert.equal(live?.etag, etagOf(answer.headers), "B's publication is the live one, not overwritten by A's");
        assert.deepEqual(await held(a), [north, patrol], "the groups follow B's set: A's leaving north is undone");
      });
    });
  });

  void describe(`a PUBLISH that fails after it changed groups is told as not done, so it undoes them (${kind})`, () => {
    void test("a swap left patrol and joined north, then storing engine's confirmation fails: patrol is affiliated again, north left, the refusal says so", async () => {
      await twoInstances(kind, async (a, _b, fire) => {
        assert.equal((await publishUas(a.ctx, publish([patrol]), flow)).status, 200);
        const before = await a.ctx.publications.get(alice, 'mcptt');
        failAffiliationWrite(a, 2); // the first write leaves patrol, joins north and reserves engine; the second (fire.example's yes) fails
        await assert.rejects(publishUas(a.ctx, publish([north, engine]), flow), unavailable);

        assert.deepEqual(await held(a), [patrol], 'what the failed PUBLISH left is affiliated again, what it joined left');
        assert.equal((await a.ctx.publications.get(alice, 'mcptt'))?.etag, before?.etag);
        const refusal = (await a.ctx.server.store.queryAudit({ onBehalfOf: alice, limit: 10 })).at(-1);
        assert.equal(refusal?.httpStatus, 503);
        assert.deepEqual((refusal?.result as { undone?: unknown }).undone, [
          { groupId: patrol, status: 'affiliated' },
          { groupId: north, status: 'deaffiliated' },
        ]);
        assert.ok(fire.holds.has(engine), "fire.example's confirmation is left to the reservation sweep and re-synchronisation");
      });
    });

    void test('a swap left engine through its host, then the write of its own groups fails: engine is affiliated again, the refusal says so', async () => {
      await twoInstances(kind, async (a, _b, fire) => {
        assert.equal((await publishUas(a.ctx, publish([patrol, engine]), flow)).status, 200);
        const before = await a.ctx.publications.get(alice, 'mcptt');
        failAffiliationWrite(a, 3); // two writes leave engine (10.X.4.3 steps 3 and 7), the third (north for patrol) fails
        await assert.rejects(publishUas(a.ctx, publish([north]), flow), unavailable);

        assert.deepEqual(await held(a), [engine, patrol], 'engine is affiliated again, patrol never left');
        assert.ok(fire.holds.has(engine), 'at fire.example too');
        assert.equal((await a.ctx.publications.get(alice, 'mcptt'))?.etag, before?.etag);
        const refusal = (await a.ctx.server.store.queryAudit({ onBehalfOf: alice, limit: 10 })).at(-1);
        assert.equal(refusal?.httpStatus, 503);
        assert.deepEqual((refusal?.result as { undone?: unknown }).undone, [{ groupId: engine, status: 'affiliated' }]);
      });
    });

    void test('the set change is stored, then the publication cannot be: the change is undone', async () => {
      await twoInstances(kind, async (a) => {
        assert.equal((await publishUas(a.ctx, publish([patrol]), flow)).status, 200);
        const before = await a.ctx.publications.get(alice, 'mcptt');
        a.failPut = true;
        await assert.rejects(publishUas(a.ctx, publish([north]), flow), unavailable);

        assert.deepEqual(await held(a), [patrol]);
        assert.equal((await a.ctx.publications.get(alice, 'mcptt'))?.etag, before?.etag);
      });
    });

    void test("the set fulfils a negotiated change, then the publication cannot be stored: the change is not accepted, the dispatcher not told; alice's next PUBLISH of the set accepts it", async () => {
      await twoInstances(kind, async (a) => {
        assert.equal((await publishUas(a.ctx, publish([patrol]), flow)).status, 200);
        const asked = deferred();
        let answered = false;
        // TS 24.379 §9.2.1.4: the dispatcher asks alice to join north, and waits for her answer (§9.2.1.5: her set).
        const change: ChangeRequest = { mcServiceId: dispatch, service: 'mcptt', mode: 'negotiated', targets: [alice], affiliate: [north], deaffiliate: [] };
        const asking = remoteChangeNegotiated(a.ctx.server, change, 'join-north', asked.resolve).finally(() => (answered = true));
        await asked.promise;
        a.failPut = true;
        await assert.rejects(publishUas(a.ctx, publish([patrol, north]), flow), unavailable);

        assert.deepEqual(await held(a), [patrol], 'the failed PUBLISH joined north neither through its set nor through the change');
        assert.equal((await a.ctx.server.store.getChange('join-north', alice))?.state, 'asked', 'the failed PUBLISH answered nothing');
        assert.equal(answered, false, 'the dispatcher is not told accepted');

        assert.equal((await publishUas(a.ctx, publish([patrol, north]), flow)).status, 200);
        assert.deepEqual(await asking, [{ target: alice, outcome: 'applied', status: [{ groupId: north, status: 'affiliated' }] }]);
        assert.equal((await a.ctx.server.store.getChange('join-north', alice))?.state, 'accepted');
        assert.deepEqual(await held(a), [north, patrol]);
      });
    });

    void test("B's re-check takes back the groups A's expiry left, then fails part-way: B leaves what it took back and keeps no publication", async () => {
      await twoInstances(kind, async (a, b, fire, clock) => {
        assert.equal((await publishUas(a.ctx, publish([patrol, engine]), flow)).status, 200);
        const expired = await a.ctx.publications.get(alice, 'mcptt');
        assert.ok(expired);
        clock.pass(3601_000);
        const read = deferred();
        const open = deferred();
        b.holdBeforePut = open.promise;
        holdNextGroupsRead(b.ctx.server.store, { when: 'after', reached: read.resolve });
        // B finds both groups held (nothing to change) and waits to store its publication; A then leaves them.
        const answering = publishUas(b.ctx, publish([patrol, engine]), flow);
        await read.promise;
        await expirePublication(a.ctx, expired);
        assert.deepEqual(await held(a), []);
        // B's re-check: its first write takes patrol back and reserves engine; the second, once fire.example said yes, fails.
        failAffiliationWrite(b, 2);
        open.resolve();
        await assert.rejects(answering, unavailable);

        assert.deepEqual(await held(b), [], 'the failed PUBLISH does not keep patrol, which only its re-check took back');
        assert.equal(await b.ctx.publications.get(alice, 'mcptt'), undefined, 'nor its publication');
        assert.ok(fire.holds.has(engine), "fire.example's confirmation is left to the reservation sweep and re-synchronisation");
      });
    });

    void test("B left north, then cannot store its publication; A accepted {patrol} meanwhile: B's undo does not give north back against A's set", async () => {
      await twoInstances(kind, async (a, b) => {
        await publishedThroughA(a);
        const left = affiliationWritten(b);
        const open = deferred();
        b.holdBeforePut = open.promise;
        b.failPut = true;
        const failing = publishUas(b.ctx, publish([patrol]), flow);
        await left; // B left north; its publication waits, then fails.

        const answer = await publishUas(a.ctx, publish([patrol]), flow);
        assert.equal(answer.status, 200);
        open.resolve();
        await assert.rejects(failing, unavailable);

        const live = await a.ctx.publications.get(alice, 'mcptt');
        assert.equal(live?.etag, etagOf(answer.headers), "A's publication is the live one");
        assert.deepEqual(await held(a), [patrol], "the groups follow A's set, the newest");
      });
    });

    void test("B's PUBLISH fails, its undo finds A's newer {patrol, north}; A's whole PUBLISH of {patrol} runs before B's undo writes it: B follows the live one too, exactly {patrol} is held", async () => {
      await twoInstances(kind, async (a, b) => {
        assert.equal((await publishUas(a.ctx, publish([patrol]), flow)).status, 200);
        const left = affiliationWritten(b);
        const open = deferred();
        b.holdBeforePut = open.promise;
        b.failPut = true;
        const failing = publishUas(b.ctx, publish([north]), flow);
        await left; // B left patrol and joined north; its publication waits, then fails.
        assert.equal((await publishUas(a.ctx, publish([patrol, north]), flow)).status, 200);

        // Once B's undo has put back what it changed and read A's publication, its next read of the groups waits for A's next PUBLISH.
        const reached = deferred();
        const following = deferred();
        b.afterGet = () => holdNextGroupsRead(b.ctx.server.store, { when: 'before', reached: reached.resolve, open: following.promise });
        open.resolve();
        await reached.promise;

        const answer = await publishUas(a.ctx, publish([patrol]), flow);
        assert.equal(answer.status, 200);
        assert.deepEqual(await held(a), [patrol], "A's second set, and its publication live");
        following.resolve();
        await assert.rejects(failing, unavailable);

        const live = await a.ctx.publications.get(alice, 'mcptt');
        assert.equal(live?.etag, etagOf(answer.headers), "A's second publication is the live one");
        assert.deepEqual(await held(a), [patrol], "B's undo wrote the set it read, read the live publication again and followed it: north left, not kept beside patrol");
      });
    });
  });
}
