// E2E (issue 7, STAGE3.md "Server to server"): partner re-synchronisation with police, fire and ambulance in three
// processes on loopback. (a) fire holds an affiliation police does not (police SIGKILLed between fire applying and
// police storing; an undo that failed all its attempts): after police is back, fire and its GMS no longer list it.
// (b) fire loses records police holds (rows deleted while it was down, or by hand while it runs): re-sync asks again
// and both agree; one fire now refuses is dropped at police and its user told. (c) a re-sync from ambulance cannot
// touch police's users at fire.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { E2E_BACKEND, call, cli } from '../support/harness.ts';
import { withClient } from '../support/postgres.ts';
import {
  A,
  F,
  P,
  Relay,
  affiliate,
  alice,
  assertAgreement,
  bob,
  carol,
  dave,
  engine,
  medic,
  partnerGmsGroups,
  primaryRecords,
  rescue,
  sleep,
  startWithRelayToFire,
  statusMap,
  type ThreeSystems,
} from '../support/partners.ts';
import { PartnerGate } from '../../src/adapters/partner-gate.ts';
import type { PartnerConfig } from '../../src/config/config.ts';

const TIMEOUT_MS = 2000;
/** Fire spares records younger than its timeout for police (default 5000 ms); agreement may take a follow-up run. */
const SETTLE_MS = 20_000;
let sys: ThreeSystems;
/** Police's next hop to fire: passes, or holds answers back. */
let toFire: Relay;

before(async () => {
  const started = await startWithRelayToFire(TIMEOUT_MS);
  sys = started;
  toFire = started.toFire;
});

after(async () => {
  await sys?.stop();
});

const fireDb = (): string => join(sys.fire.dir, 'fire.db');
/** Fire's PostgreSQL database when the suite runs on PostgreSQL (MUSTER_E2E_BACKEND), else undefined: its SQLite file. */
const firePostgres = (): string | undefined => (E2E_BACKEND === 'postgres' ? sys.fire.config.systems.find((s) => s.name === 'fire')?.store : undefined);

/** Fire's own store rows for a police user: group -> state. */
async function fireRows(who: string): Promise<Record<string, string>> {
  const pgUrl = firePostgres();
  const rows = pgUrl
    ? await withClient(pgUrl, async (c) => (await c.query<{ group_id: string; state: string }>('SELECT group_id, state FROM affiliations WHERE user_id = $1 AND service = $2', [who, 'mcptt'])).rows)
    : sqliteRows(who);
  return Object.fromEntries(rows.map((r) => [r.group_id, r.state]));
}

function sqliteRows(who: string): { group_id: string; state: string }[] {
  const db = new Database(fireDb(), { readonly: true, fileMustExist: true });
  try {
    return db.prepare('SELECT group_id, state FROM affiliations WHERE user_id = ? AND service = ?').all(who, 'mcptt') as { group_id: string; state: string }[];
  } finally {
    db.close();
  }
}

/** Removes a record from fire's store and GMS behind its back (an older export restored, an operator's hand). */
async function deleteAtFire(who: string, groupId: string): Promise<void> {
  // Fire's GMS lists its own server's members from this same table, so the row is gone from both.
  const pgUrl = firePostgres();
  if (pgUrl) {
    const { rowCount } = await withClient(pgUrl, (c) => c.query('DELETE FROM affiliations WHERE user_id = $1 AND group_id = $2', [who, groupId]));
    assert.equal(rowCount, 1, `fire held ${who} in ${groupId}`);
    return;
  }
  const db = new Database(fireDb(), { fileMustExist: true });
  try {
    db.pragma('busy_timeout = 5000');
    const a = db.prepare('DELETE FROM affiliations WHERE user_id = ? AND group_id = ?').run(who, groupId).changes;
    assert.equal(a, 1, `fire held ${who} in ${groupId}`);
  } finally {
    db.close();
  }
}

type AuditEntry = { at: string; action: string; subject: string; role: string; onBehalfOf: string | null; service: string | null; groups: string[]; httpStatus: number; result: unknown };

/** A system's audit entries of one action (docs/audit.md). */
async function auditOf(domain: typeof P | typeof F, action: string): Promise<AuditEntry[]> {
  const m = domain === P ? sys.police : sys.fire;
  const r = await call('GET', `${m.url()}/admin/v1/audit?limit=1000`, await m.operatorToken(domain));
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return (r.body as { entries: AuditEntry[] }).entries.filter((e) => e.action === action);
}
const fireAudit = (action: string): Promise<AuditEntry[]> => auditOf(F, action);

async function until(what: string, check: () => Promise<boolean> | boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) assert.fail(`not within ${ms} ms: ${what}`);
    await sleep(100);
  }
}

/** Whether an `affiliation-status` event of `who` at police matches, replayed after event 1 (a first connection would replay only open change requests). */
async function statusEvents(who: string, match: (data: { status: { groupId: string; status: string; reason?: string }[] }) => boolean): Promise<boolean> {
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), 3000);
  try {
    const res = await fetch(`${sys.urls.police}/mc/v1/events`, { headers: { authorization: `Bearer ${await sys.police.token(who)}`, 'last-event-id': '1' }, signal: ac.signal });
    assert.equal(res.status, 200);
    let buf = '';
    const decoder = new TextDecoder();
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      buf += decoder.decode(chunk, { stream: true });
      for (const block of buf.split('\n\n').slice(0, -1)) {
        if (!/^event: affiliation-status$/m.test(block)) continue;
        const data = block.split('\n').filter((l) => l.startsWith('data: ')).map((l) => l.slice(6)).join('\n');
        if (match(JSON.parse(data) as { status: { groupId: string; status: string; reason?: string }[] })) return true;
      }
    }
  } catch (e) {
    if (!ac.signal.aborted) throw e;
  } finally {
    clearTimeout(timer);
    ac.abort();
  }
  return false;
}

/** A re-sync page to fire signed as `origin` with `secret`, for the trust tests. */
type Answer = { status: number; body: { error?: { field?: string }; removed?: unknown[] } };

async function pageToFire(origin: string, secret: string, body: unknown): Promise<Answer> {
  const token = await PartnerGate.sign(origin, { domain: F, secret } as PartnerConfig);
  return (await call('POST', `${sys.urls.fire}/federation/v1/affiliation-resyncs`, token, body));
}

void describe('(a) the partner holds an affiliation the primary does not', () => {
  // On PostgreSQL another instance may still be waiting for that answer, so the crash's reservation is swept only
  // after the sweep age (a minute at least, checked each minute; README), not at start: too long for this suite.
  const skipOnPostgres = E2E_BACKEND === 'sqlite' ? false : 'on PostgreSQL the reservation is swept after a minute or two, not at start';
  void test('police SIGKILLed after fire applied and before police stored: once police is back, fire and its GMS no longer list it', { skip: skipOnPostgres }, async () => {
    toFire.mode = { kind: 'slow', ms: 60_000 };
    const pending = affiliate(sys, alice, [engine]).catch(() => undefined); // police dies before it answers
    try {
      await until('fire applied the request', async () => (await fireRows(alice))[engine] === 'affiliated', 10_000);
      await sys.police.kill();
    } finally {
      toFire.mode = { kind: 'pass' };
    }
    await pending;
    assert.deepEqual(await partnerGmsGroups(sys, alice), [engine], "fire's GMS lists alice while police is down");
    await sys.police.spawn();
    // Police keeps no reservation from the crash, and the re-synchronisation removes fire's record.
    await assertAgreement(sys, alice, [], SETTLE_MS);
    assert.deepEqual(await fireRows(alice), {});
    // On record at fire: police's server removed alice's engine there.
    assert.ok((await fireAudit('federation-resync')).some((e) => e.subject === P && e.role === 'server' && e.onBehalfOf === alice && e.groups.join() === engine && e.httpStatus === 200));
    // A real affiliation afterwards is kept at both ends (the re-sync removed only what police did not hold).
    assert.deepEqual(statusMap(await affiliate(sys, alice, [engine])), { [engine]: 'affiliated' });
    await assertAgreement(sys, alice, [engine]);
  });

  void test('an undo that failed all its attempts (fire went down after applying): removed by the re-synchronisation once fire is back', async () => {
    toFire.mode = { kind: 'slow', ms: 60_000 };
    try {
      const pending = affiliate(sys, bob, [rescue]);
      await until('fire applied the request', async () => (await fireRows(bob))[rescue] === 'affiliated', 10_000);
      await sys.fire.kill();
      assert.deepEqual(statusMap(await pending), { [rescue]: 'rejected:partner-unreachable' });
      await until('the undo gave up', () => sys.police.output.includes('could not undo an unanswered partner request'), 30_000);
    } finally {
      toFire.mode = { kind: 'pass' };
    }
    assert.equal((await fireRows(bob))[rescue], 'affiliated', 'the undo did not reach fire');
    await sys.fire.spawn();
    await assertAgreement(sys, bob, [], SETTLE_MS);
    assert.deepEqual(await fireRows(bob), {});
  });
});

void describe('(b) the partner loses a record the primary holds', () => {
  void test('rows deleted while fire was down: after its restart, police asks again and both agree', async () => {
    assert.deepEqual(statusMap(await affiliate(sys, carol, [engine, rescue, medic])), { [engine]: 'affiliated', [rescue]: 'affiliated', [medic]: 'affiliated' });
    await assertAgreement(sys, carol, [engine, medic, rescue]);
    await sys.fire.kill();
    await deleteAtFire(carol, engine);
    // What fire restarts from, read while it is down (its GMS lists its own server's members from this same table).
    // Not read after the restart: spawn() returns once every instance is up (two on PostgreSQL), and by then the
    // first one's start-up re-synchronisation may have had police ask for engine again already.
    assert.deepEqual(await fireRows(carol), { [rescue]: 'affiliated' }, 'fire restarts without the record');
    const restarted = Date.now();
    await sys.fire.spawn();
    // Fire's start-up re-synchronisation tells police it started; police re-synchronises and asks for engine again.
    await assertAgreement(sys, carol, [engine, medic, rescue], SETTLE_MS);
    assert.deepEqual(await fireRows(carol), { [engine]: 'affiliated', [rescue]: 'affiliated' });
    // On record at fire: it came back because police's server asked for it again (each instance of police may have).
    const asked = (await fireAudit('federation-affiliation')).filter((e) => Date.parse(e.at) >= restarted && e.onBehalfOf === carol);
    assert.ok(asked.length > 0, 'police asked fire again after the restart');
    assert.deepEqual(new Set(asked.map((e) => JSON.stringify([e.subject, e.role, e.groups, e.httpStatus]))), new Set([JSON.stringify([P, 'server', [engine], 200])]));
  });

  void test('muster resync: a record deleted at the running partner is asked again; one it refuses now is dropped and the user told', async () => {
    // Police's own re-synchronisations (start-up, partner restarted, back after being unreachable, a failed run tried
    // again: on each instance, some still waiting after the outages above) would ask for the lost records again too,
    // before or during the operator's run. Each starts with a probe of fire's /healthz; while those fail, none starts,
    // and the operator's run (which does not probe) is the one that finds what fire lost.
    toFire.mode = { kind: 'junk', status: 502, body: '', path: '/healthz' };
    try {
      assert.deepEqual(statusMap(await affiliate(sys, dave, [engine, rescue])), { [engine]: 'affiliated', [rescue]: 'affiliated' });
      await assertAgreement(sys, dave, [engine, rescue]);
      // Fire's operator takes dave out of rescue's members (his affiliation stays), then both records are lost at fire.
      const fireOp = await sys.fire.operatorToken(F);
      const doc = await call('GET', `${sys.urls.fire}/gms/v1/groups/${encodeURIComponent(rescue)}`, fireOp);
      assert.equal(doc.status, 200, JSON.stringify(doc.body));
      const { revision, ...group } = doc.body as { revision: number; members: string[] };
      void revision;
      const put = await call('PUT', `${sys.urls.fire}/gms/v1/groups/${encodeURIComponent(rescue)}`, fireOp, { ...group, members: group.members.filter((m) => m !== dave) });
      assert.equal(put.status, 200, JSON.stringify(put.body));
      await deleteAtFire(dave, engine);
      await deleteAtFire(dave, rescue);

      const r = await cli(['resync', '--config', join(sys.police.dir, 'config.json'), '--system', 'police', '--partner', F]);
      assert.equal(r.code, 0, r.stderr + r.stdout);
      const lines = r.stdout.split('\n');
      assert.match(lines[0]!, /^fire\.example {2}complete: 0 removed, 2 asked again/);
      assert.ok(lines.includes(`  re-asked  ${dave}  ${engine}  (mcptt)  agreed`), r.stdout);
      assert.ok(lines.includes(`  re-asked  ${dave}  ${rescue}  (mcptt)  dropped (not-member)`), r.stdout);

      assert.deepEqual(await primaryRecords(sys, dave), { [engine]: 'affiliated' });
      const onRecord = (await auditOf(P, 'partner-resync')).find((e) => e.subject === 'operator' && JSON.stringify(e.result).includes(rescue));
      assert.ok(onRecord, 'the operator\'s run is on record at police, naming what it dropped');
      // The drop itself, on dave's record: by police (no request asked for it), in the transaction that dropped it.
      const drops = (await auditOf(P, 'resync-drop')).filter((e) => e.onBehalfOf === dave);
      assert.deepEqual(
        drops.map((e) => [e.subject, e.role, e.service, e.groups, e.result]),
        [[P, 'server', 'mcptt', [rescue], { partner: F, why: 'operator', dropped: [{ groupId: rescue, reason: 'not-member' }] }]],
      );
      await assertAgreement(sys, dave, [engine]);
      assert.ok(await statusEvents(dave, (d) => d.status.some((s) => s.groupId === rescue && s.status === 'rejected' && s.reason === 'not-member')), "dave's clients were told rescue is gone, and why");

      // Nothing left to do: a second run changes nothing.
      const again = await cli(['resync', '--config', join(sys.police.dir, 'config.json'), '--system', 'police', '--json']);
      assert.equal(again.code, 0, again.stderr);
      const reports = (JSON.parse(again.stdout) as { resyncs: { partner: string; complete: boolean; removed: unknown[]; reasked: unknown[] }[] }).resyncs;
      assert.deepEqual(reports.map((x) => [x.partner, x.complete, x.removed.length, x.reasked.length]).sort(), [[A, true, 0, 0], [F, true, 0, 0]]);
    } finally {
      toFire.mode = { kind: 'pass' };
    }
  });

  void test('the admin route refuses a non-operator and names an unknown partner', async () => {
    const asUser = await call('POST', `${sys.urls.police}/admin/v1/partner-resyncs`, await sys.police.token(alice), {});
    assert.equal(asUser.status, 403, JSON.stringify(asUser.body));
    const unknown: Answer = await call('POST', `${sys.urls.police}/admin/v1/partner-resyncs`, await sys.police.operatorToken(P), { partner: 'water.example' });
    assert.equal(unknown.status, 404, JSON.stringify(unknown.body));
    assert.equal(unknown.body.error?.field, 'partner');
    const noSystem = await cli(['resync', '--config', join(sys.police.dir, 'config.json'), '--system', 'nowhere']);
    assert.equal(noSystem.code, 2, noSystem.stderr);
    assert.match(noSystem.stderr, /^muster: no system nowhere in .* \(systems: police\)$/m);
  });
});

void describe('(c) a re-sync from one system cannot touch users of another', () => {
  void test("ambulance's page naming a police user is refused (403); its empty page leaves police's users at fire alone", async () => {
    const before = await assertAgreement(sys, carol);
    assert.ok(before.includes(engine), JSON.stringify(before));
    const key = { mcServiceId: carol, service: 'mcptt', groupId: engine };
    const named = await pageToFire(A, sys.secrets.fireAmbulance, { host: F, affiliations: [key] });
    assert.equal(named.status, 403, JSON.stringify(named.body));
    assert.equal(named.body.error?.field, 'affiliations[0].mcServiceId');
    assert.ok((await fireAudit('federation-resync')).some((e) => e.subject === A && e.httpStatus === 403), 'the refused page is on record');
    const bound = await pageToFire(A, sys.secrets.fireAmbulance, { host: F, after: key, affiliations: [] });
    assert.equal(bound.status, 403, JSON.stringify(bound.body));
    // An empty page from ambulance: "ambulance's users hold nothing at fire", which says nothing about police's.
    const empty = await pageToFire(A, sys.secrets.fireAmbulance, { host: F, affiliations: [] });
    assert.equal(empty.status, 200, JSON.stringify(empty.body));
    assert.deepEqual(empty.body.removed, []);
    await sleep(300);
    assert.deepEqual(await assertAgreement(sys, carol), before);
    assert.equal((await fireRows(carol))[engine], 'affiliated');
  });

  void test('a page signed with the wrong secret is 401; one naming another system\'s group is 400; nothing changes', async () => {
    const before = await assertAgreement(sys, carol);
    const forged = await pageToFire(P, sys.secrets.fireAmbulance, { host: F, affiliations: [] });
    assert.equal(forged.status, 401, JSON.stringify(forged.body));
    const foreignGroup = await pageToFire(P, sys.secrets.policeFire, { host: F, affiliations: [{ mcServiceId: carol, service: 'mcptt', groupId: medic }] });
    assert.equal(foreignGroup.status, 400, JSON.stringify(foreignGroup.body));
    assert.equal(foreignGroup.body.error?.field, 'affiliations[0].groupId');
    assert.deepEqual(await assertAgreement(sys, carol), before);
  });
});

