// E2E (issue 2), one MC system: remote change of affiliations (TS 23.280 10.X.5.1.1 mandatory, 10.X.5.1.2
// negotiated) against the real server process: client 2's SSE stream, acknowledgement, offline target with replay,
// Last-Event-ID, acceptance, rejection, timeout (negotiationTimeoutSeconds: 1) and the change right.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Muster, call, freePort, secret } from '../support/harness.ts';

const D = 'police.example';
const u = (name: string): string => `sip:${name}@${D}`;
const g = (name: string): string => `sip:${name}@${D}`;
const enc = encodeURIComponent;

interface GroupStatus {
  groupId: string;
  status: 'affiliated' | 'deaffiliated' | 'rejected';
  reason?: string;
}
interface ChangeResponse {
  id: string;
  mcServiceId: string;
  mode: string;
  results: { target: string; outcome: string; status: GroupStatus[] }[];
}
interface ChangeEventData {
  id: string;
  mode: 'mandatory' | 'negotiated';
  actor: string;
  target: string;
  service: string;
  affiliate: string[];
  deaffiliate: string[];
  status?: GroupStatus[];
  deadline?: string;
}
interface SseEvent {
  id: number;
  type: string;
  data: unknown;
}

/** A user's SSE stream (GET /mc/v1/events), read as it arrives; waits are bounded. */
class EventStream {
  readonly events: SseEvent[] = [];
  /** The stream's comment lines (": ..."), what the server says of the stream itself. */
  readonly comments: string[] = [];
  private readonly abort = new AbortController();
  private wake: (() => void) | undefined;
  private ended = false;

  private constructor() {}

  static async open(url: string, token: string, lastEventId?: number): Promise<EventStream> {
    const s = new EventStream();
    const res = await fetch(`${url}/mc/v1/events`, {
      headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream', ...(lastEventId !== undefined ? { 'last-event-id': String(lastEventId) } : {}) },
      signal: s.abort.signal,
    });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /text\/event-stream/);
    void s.read(res.body!);
    return s;
  }

  private async read(body: ReadableStream<Uint8Array>): Promise<void> {
    const decoder = new TextDecoder();
    let buf = '';
    try {
      for await (const chunk of body) {
        buf += decoder.decode(chunk, { stream: true });
        let cut: number;
        while ((cut = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, cut);
          buf = buf.slice(cut + 2);
          let id: number | undefined;
          let type = 'message';
          const data: string[] = [];
          for (const line of block.split('\n')) {
            if (line.startsWith(':')) this.comments.push(line.slice(1).trim());
            else if (line.startsWith('id: ')) id = Number(line.slice(4));
            else if (line.startsWith('event: ')) type = line.slice(7);
            else if (line.startsWith('data: ')) data.push(line.slice(6));
          }
          if (id !== undefined) this.events.push({ id, type, data: JSON.parse(data.join('\n')) as unknown });
          this.wake?.();
        }
      }
    } catch {
      /* aborted by close() */
    } finally {
      this.ended = true;
      this.wake?.();
    }
  }

  /** The first event (from the start of the stream) that matches; fails after `ms`. */
  async next(match: (e: SseEvent) => boolean, ms = 5000): Promise<SseEvent> {
    const deadline = Date.now() + ms;
    for (;;) {
      const found = this.events.find(match);
      if (found) return found;
      if (this.ended) throw new Error(`stream ended without the event; got ${JSON.stringify(this.events)}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no such event within ${ms} ms; got ${JSON.stringify(this.events)}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
    }
  }

  close(): void {
    this.abort.abort();
  }
}

const changeEvent = (changeId: string) => (e: SseEvent): boolean => e.type === 'affiliation-change' && (e.data as ChangeEventData).id === changeId;
const anyChange = (e: SseEvent): boolean => e.type === 'affiliation-change';
const summary = (status: GroupStatus[]): string[] => status.map((s) => `${s.groupId}=${s.status}${s.reason ? `:${s.reason}` : ''}`);

let m: Muster;
let base: string;

const RESPONDERS = ['bob', 'carol', 'dave', 'erin', 'fred', 'gina', 'hank', 'ivy', 'jack', 'kate', 'liam'];

before(async () => {
  m = await Muster.start({
    negotiationTimeoutSeconds: 1,
    systems: [
      {
        name: 'police',
        domain: D,
        http: { host: '127.0.0.1', port: await freePort() },
        secret: secret(),
        users: [
          { id: u('dispatch'), services: ['mcptt'], n2: 10, groups: [g('patrol'), g('north')], remoteChange: true },
          { id: u('alice'), services: ['mcptt'], n2: 3, groups: [g('patrol'), g('north')] },
          { id: u('sergeant'), services: ['mcptt'], n2: 3, groups: [g('patrol')], remoteChange: { users: [u('bob')], groups: [g('patrol')] } },
          ...RESPONDERS.map((name) => ({ id: u(name), services: ['mcptt'], n2: 2, groups: [g('patrol'), g('north'), g('south')] })),
        ],
        groups: [
          { id: g('patrol'), services: ['mcptt'], members: [u('dispatch'), u('alice'), u('sergeant'), ...RESPONDERS.map(u)] },
          { id: g('north'), services: ['mcptt'], members: [u('dispatch'), u('alice'), ...RESPONDERS.map(u)] },
          { id: g('south'), services: ['mcptt'], members: [u('dispatch')] },
        ],
      },
    ],
  });
  base = m.url('police');
});

after(async () => {
  await m?.stop();
});

async function change(actor: string, body: { mode: 'mandatory' | 'negotiated'; targets: string[]; affiliate?: string[]; deaffiliate?: string[] }): Promise<ChangeResponse> {
  const r = await call('POST', `${base}/mc/v1/affiliation-changes`, await m.token(actor), { mcServiceId: actor, service: 'mcptt', ...body });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body as ChangeResponse;
}

async function answer(user: string, changeId: string, accept: boolean): Promise<{ status: number; body: { state?: string; status?: GroupStatus[]; error?: { code: string } } }> {
  const r = await call('POST', `${base}/mc/v1/affiliation-changes/${enc(changeId)}/answer`, await m.token(user), { accept });
  return { status: r.status, body: r.body as { state?: string; status?: GroupStatus[]; error?: { code: string } } };
}

async function stored(user: string): Promise<string[]> {
  const r = await call('GET', `${base}/mc/v1/users/${enc(user)}/affiliations?service=mcptt`, await m.token(user));
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return (r.body as { affiliations: { groupId: string }[] }).affiliations.map((a) => a.groupId).sort();
}

async function affiliate(user: string, groupIds: string[]): Promise<void> {
  const r = await call('POST', `${base}/mc/v1/affiliations`, await m.token(user), { mcServiceId: user, service: 'mcptt', groupIds });
  assert.equal(r.status, 200);
  assert.ok((r.body as { status: GroupStatus[] }).status.every((s) => s.status === 'affiliated'), JSON.stringify(r.body));
}

void describe('mandatory mode', () => {
  void test('reaches the connected target as an affiliation-change event, is applied at once and acknowledged', async () => {
    await affiliate(u('bob'), [g('north')]);
    const stream = await EventStream.open(base, await m.token(u('bob')));
    try {
      const res = await change(u('dispatch'), { mode: 'mandatory', targets: [u('bob')], affiliate: [g('patrol')], deaffiliate: [g('north')] });
      assert.equal(res.mode, 'mandatory');
      assert.equal(res.results.length, 1);
      assert.equal(res.results[0]!.target, u('bob'));
      assert.equal(res.results[0]!.outcome, 'applied');
      assert.deepEqual(summary(res.results[0]!.status), [`${g('patrol')}=affiliated`, `${g('north')}=deaffiliated`]);
      assert.deepEqual(await stored(u('bob')), [g('patrol')]);

      const ev = await stream.next(changeEvent(res.id));
      const data = ev.data as ChangeEventData;
      assert.equal(data.mode, 'mandatory');
      assert.equal(data.actor, u('dispatch'));
      assert.equal(data.target, u('bob'));
      assert.deepEqual(data.affiliate, [g('patrol')]);
      assert.deepEqual(data.deaffiliate, [g('north')]);

      // bob's clients also hear that his affiliations changed.
      const statusEvents = (e: SseEvent): boolean => e.type === 'affiliation-status';
      await stream.next((e) => statusEvents(e) && summary((e.data as { status: GroupStatus[] }).status).includes(`${g('patrol')}=affiliated`));
      await stream.next((e) => statusEvents(e) && summary((e.data as { status: GroupStatus[] }).status).includes(`${g('north')}=deaffiliated`));

      const ack = await answer(u('bob'), res.id, true);
      assert.equal(ack.status, 200, JSON.stringify(ack.body));
      assert.equal(ack.body.state, 'acknowledged');
      // The acknowledgement changes nothing stored.
      assert.deepEqual(await stored(u('bob')), [g('patrol')]);
      // Someone else cannot answer bob's change; an unknown change is 404; a malformed answer is 400.
      assert.equal((await answer(u('carol'), res.id, true)).status, 404);
      assert.equal((await answer(u('bob'), 'no-such-change', true)).status, 404);
      const bad = await call('POST', `${base}/mc/v1/affiliation-changes/${enc(res.id)}/answer`, await m.token(u('bob')), { accept: 'yes' });
      assert.equal(bad.status, 400, JSON.stringify(bad.body));
      // The dispatcher, who may change bob, may also read bob's affiliations; alice may not.
      const view = await call('GET', `${base}/mc/v1/users/${enc(u('bob'))}/affiliations?service=mcptt`, await m.token(u('dispatch')));
      assert.equal(view.status, 200, JSON.stringify(view.body));
      assert.deepEqual((view.body as { affiliations: { groupId: string }[] }).affiliations.map((a) => a.groupId), [g('patrol')]);
      assert.equal((await call('GET', `${base}/mc/v1/users/${enc(u('bob'))}/affiliations`, await m.token(u('alice')))).status, 403);
    } finally {
      stream.close();
    }
  });

  void test('a target offline at the time gets its change when it connects; Last-Event-ID replays only later events', async () => {
    const first = await change(u('dispatch'), { mode: 'mandatory', targets: [u('carol')], affiliate: [g('patrol')] });
    assert.equal(first.results[0]!.outcome, 'applied');
    assert.deepEqual(await stored(u('carol')), [g('patrol')]);

    // carol connects only now: the change is replayed to her.
    const s1 = await EventStream.open(base, await m.token(u('carol')));
    let firstEventId: number;
    try {
      const ev = await s1.next(changeEvent(first.id));
      firstEventId = ev.id;
      assert.equal((ev.data as ChangeEventData).mode, 'mandatory');
      assert.equal((await answer(u('carol'), first.id, true)).body.state, 'acknowledged');
    } finally {
      s1.close();
    }

    // A second change while carol is away again.
    const second = await change(u('dispatch'), { mode: 'mandatory', targets: [u('carol')], affiliate: [g('north')], deaffiliate: [g('patrol')] });
    assert.equal(second.results[0]!.outcome, 'applied');

    // Resuming after the first change's event: only later events come, the second change among them.
    const s2 = await EventStream.open(base, await m.token(u('carol')), firstEventId);
    try {
      await s2.next(changeEvent(second.id));
      assert.ok(s2.events.length > 0);
      for (const e of s2.events) assert.ok(e.id > firstEventId, `event ${e.id} is not after ${firstEventId}`);
      assert.equal(s2.events.filter(changeEvent(first.id)).length, 0, 'the first change was replayed again');
      const ids = s2.events.map((e) => e.id);
      assert.deepEqual(ids, [...ids].sort((a, b) => a - b), 'events in increasing id order');
    } finally {
      s2.close();
    }
    // A fresh connection (no Last-Event-ID) gets what still waits for an answer: the second change, not the
    // first, which carol acknowledged.
    const s3 = await EventStream.open(base, await m.token(u('carol')));
    try {
      await s3.next(changeEvent(second.id));
      assert.equal(s3.events.filter(changeEvent(first.id)).length, 0, 'an acknowledged change was replayed to a fresh connection');
    } finally {
      s3.close();
    }
    assert.deepEqual(await stored(u('carol')), [g('north')]);
  });

  void test('a Last-Event-ID above any id this server issued (a restored store, another system\'s id) is taken as none: the stream says so and delivers', async () => {
    const waiting = await change(u('dispatch'), { mode: 'mandatory', targets: [u('liam')], affiliate: [g('patrol')] });
    const neverIssued = 900_000_000_000;
    const s = await EventStream.open(base, await m.token(u('liam')), neverIssued);
    try {
      // As a first connection: what still waits for an answer, then live events.
      const replayed = await s.next(changeEvent(waiting.id));
      assert.ok(replayed.id < neverIssued);
      const live = await change(u('dispatch'), { mode: 'mandatory', targets: [u('liam')], affiliate: [g('north')], deaffiliate: [g('patrol')] });
      await s.next(changeEvent(live.id));
      assert.ok(s.comments.some((c) => c.includes(`Last-Event-ID ${neverIssued}`)), `the stream says why nothing is replayed after it: ${JSON.stringify(s.comments)}`);
    } finally {
      s.close();
    }
    assert.deepEqual(await stored(u('liam')), [g('north')]);
  });

  void test('the target\'s own checks still apply: refused groups are reported per group, nothing else stored', async () => {
    // dave (n2 = 2) is not a member of south; patrol and north fit.
    const res = await change(u('dispatch'), { mode: 'mandatory', targets: [u('dave')], affiliate: [g('south'), g('patrol'), g('north')] });
    assert.equal(res.results[0]!.outcome, 'applied');
    assert.deepEqual(summary(res.results[0]!.status), [`${g('south')}=rejected:not-member`, `${g('patrol')}=affiliated`, `${g('north')}=affiliated`]);
    assert.deepEqual(await stored(u('dave')), [g('north'), g('patrol')]);
  });

  void test('a user without the right gets outcome not-authorised and nothing changes', async () => {
    const res = await change(u('alice'), { mode: 'mandatory', targets: [u('erin')], affiliate: [g('patrol')] });
    assert.equal(res.results[0]!.outcome, 'not-authorised');
    assert.deepEqual(summary(res.results[0]!.status), [`${g('patrol')}=rejected:not-authorised`]);
    assert.deepEqual(await stored(u('erin')), []);
    // A right limited to users and groups: another user is refused whole; another group is refused per group.
    const otherUser = await change(u('sergeant'), { mode: 'mandatory', targets: [u('erin')], affiliate: [g('patrol')] });
    assert.equal(otherUser.results[0]!.outcome, 'not-authorised');
    assert.deepEqual(await stored(u('erin')), []);
    const mixed = await change(u('sergeant'), { mode: 'mandatory', targets: [u('bob')], affiliate: [g('north')], deaffiliate: [g('patrol')] });
    assert.deepEqual(summary(mixed.results[0]!.status), [`${g('north')}=rejected:not-authorised`, `${g('patrol')}=deaffiliated`]);
    assert.deepEqual(await stored(u('bob')), []);
    // Negotiated mode checks the right the same way, and asks nobody.
    const negotiated = await change(u('alice'), { mode: 'negotiated', targets: [u('erin')], affiliate: [g('patrol')] });
    assert.equal(negotiated.results[0]!.outcome, 'not-authorised');
    assert.deepEqual(await stored(u('erin')), []);
  });
});

void describe('negotiated mode (negotiationTimeoutSeconds: 1)', () => {
  void test('accepted: the target\'s answer runs the affiliation; client 1 gets applied with statuses', async () => {
    await affiliate(u('fred'), [g('north')]);
    const stream = await EventStream.open(base, await m.token(u('fred')));
    try {
      const pending = change(u('dispatch'), { mode: 'negotiated', targets: [u('fred')], affiliate: [g('patrol')], deaffiliate: [g('north')] });
      const ev = await stream.next(anyChange, 3000);
      const data = ev.data as ChangeEventData;
      assert.equal(data.mode, 'negotiated');
      assert.equal(data.actor, u('dispatch'));
      assert.ok(data.deadline && Date.parse(data.deadline) > Date.now() - 1000, `deadline ${data.deadline}`);
      // Nothing happens before the answer.
      assert.deepEqual(await stored(u('fred')), [g('north')]);
      const a = await answer(u('fred'), data.id, true);
      assert.equal(a.status, 200, JSON.stringify(a.body));
      assert.equal(a.body.state, 'accepted');
      const res = await pending;
      assert.equal(res.id, data.id);
      assert.equal(res.results[0]!.outcome, 'applied');
      assert.deepEqual(summary(res.results[0]!.status), [`${g('patrol')}=affiliated`, `${g('north')}=deaffiliated`]);
      assert.deepEqual(await stored(u('fred')), [g('patrol')]);
      // Answered once: a second answer is a conflict.
      assert.equal((await answer(u('fred'), data.id, false)).status, 409);
    } finally {
      stream.close();
    }
  });

  void test('rejected: outcome rejected-by-user, every group rejected-by-user, nothing stored', async () => {
    const stream = await EventStream.open(base, await m.token(u('gina')));
    try {
      const pending = change(u('dispatch'), { mode: 'negotiated', targets: [u('gina')], affiliate: [g('patrol'), g('north')] });
      const ev = await stream.next(anyChange, 3000);
      const a = await answer(u('gina'), (ev.data as ChangeEventData).id, false);
      assert.equal(a.status, 200, JSON.stringify(a.body));
      assert.equal(a.body.state, 'rejected');
      const res = await pending;
      assert.equal(res.results[0]!.outcome, 'rejected-by-user');
      assert.deepEqual(summary(res.results[0]!.status), [`${g('patrol')}=rejected:rejected-by-user`, `${g('north')}=rejected:rejected-by-user`]);
      assert.deepEqual(await stored(u('gina')), []);
    } finally {
      stream.close();
    }
  });

  void test('no answer in time: outcome timeout, nothing stored, a late answer gets 409', async () => {
    const stream = await EventStream.open(base, await m.token(u('hank')));
    try {
      const started = Date.now();
      const pending = change(u('dispatch'), { mode: 'negotiated', targets: [u('hank')], affiliate: [g('patrol')] });
      const ev = await stream.next(anyChange, 3000);
      const res = await pending;
      const waited = Date.now() - started;
      assert.ok(waited >= 900 && waited < 10_000, `answered after ${waited} ms`);
      assert.equal(res.results[0]!.outcome, 'timeout');
      assert.deepEqual(summary(res.results[0]!.status), [`${g('patrol')}=rejected:timeout`]);
      const late = await answer(u('hank'), (ev.data as ChangeEventData).id, true);
      assert.equal(late.status, 409, JSON.stringify(late.body));
      assert.equal(late.body.error?.code, 'conflict');
      assert.deepEqual(await stored(u('hank')), []);
    } finally {
      stream.close();
    }
  });

  void test('a target that is offline runs into the timeout', async () => {
    const started = Date.now();
    const pending = change(u('dispatch'), { mode: 'negotiated', targets: [u('erin')], affiliate: [g('patrol')] });
    const out = await pending;
    assert.ok(Date.now() - started >= 900, 'answered before the negotiation time');
    assert.equal(out.results[0]!.outcome, 'timeout');
    assert.deepEqual(summary(out.results[0]!.status), [`${g('patrol')}=rejected:timeout`]);
    assert.deepEqual(await stored(u('erin')), []);
    // Answering after coming online is too late.
    const late = await answer(u('erin'), out.id, true);
    assert.equal(late.status, 409, JSON.stringify(late.body));
  });

  void test('groups the target could not join are refused at once and not proposed', async () => {
    // ivy is not a member of south: refused without asking; patrol is proposed and accepted.
    const stream = await EventStream.open(base, await m.token(u('ivy')));
    try {
      const pending = change(u('dispatch'), { mode: 'negotiated', targets: [u('ivy')], affiliate: [g('south'), g('patrol')] });
      const ev = await stream.next(anyChange, 3000);
      assert.deepEqual((ev.data as ChangeEventData).affiliate, [g('patrol')]);
      assert.equal((await answer(u('ivy'), (ev.data as ChangeEventData).id, true)).status, 200);
      const res = await pending;
      assert.equal(res.results[0]!.outcome, 'applied');
      assert.deepEqual(summary(res.results[0]!.status), [`${g('south')}=rejected:not-member`, `${g('patrol')}=affiliated`]);
      assert.deepEqual(await stored(u('ivy')), [g('patrol')]);
    } finally {
      stream.close();
    }
  });

  void test('several targets: each has its own outcome; client 1 is answered once all are settled', async () => {
    const jack = await EventStream.open(base, await m.token(u('jack')));
    const kate = await EventStream.open(base, await m.token(u('kate')));
    try {
      const pending = change(u('dispatch'), { mode: 'negotiated', targets: [u('jack'), u('kate')], affiliate: [g('north')] });
      const ev = await jack.next(anyChange, 3000);
      await kate.next(anyChange, 3000); // kate is asked too, and never answers
      assert.equal((await answer(u('jack'), (ev.data as ChangeEventData).id, true)).status, 200);
      const res = await pending;
      const byTarget = new Map(res.results.map((r) => [r.target, r]));
      assert.equal(byTarget.get(u('jack'))?.outcome, 'applied');
      assert.deepEqual(summary(byTarget.get(u('jack'))!.status), [`${g('north')}=affiliated`]);
      assert.equal(byTarget.get(u('kate'))?.outcome, 'timeout');
      assert.deepEqual(summary(byTarget.get(u('kate'))!.status), [`${g('north')}=rejected:timeout`]);
      assert.deepEqual(await stored(u('jack')), [g('north')]);
      assert.deepEqual(await stored(u('kate')), []);
    } finally {
      jack.close();
      kate.close();
    }
  });
});
