// Partner re-synchronisation across pages, on two real systems (SQLite) in one process: the primary's procedure
// talks to the group host's procedure through a stand-in partner port. More records than one page on both sides
// (the host also stops short of a page once it has read its limit), lost records asked again, stale ones removed,
// recent ones spared, and another system's users at the host left alone.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import type { McUri } from '../../src/domain/ids.ts';
import { resolveConfig } from '../../src/config/config.ts';
import { McSystem } from '../../src/system.ts';
import type { Clock } from '../../src/ports/clock.ts';
import type { McServiceServer } from '../../src/procedures/context.ts';
import { affiliateAsGroupHost, deaffiliateAsGroupHost } from '../../src/procedures/affiliate-as-group-host.ts';
import { HOST_READ_LIMIT, resyncAsGroupHost } from '../../src/procedures/resync-as-group-host.ts';
import { RESYNC_PAGE, RESYNC_PAGE_BYTES, RESYNC_RATE_LIMITED_ATTEMPTS, RESYNC_RETRY_AFTER_MAX_MS, resyncPartner } from '../../src/procedures/resync-partner.ts';
import { deaffiliate } from '../../src/procedures/deaffiliate.ts';
import { resyncKeyOf } from '../../src/domain/decisions/partner-resync.ts';
import { standInPartners } from '../support/stand-in-partners.ts';
import { createTestDatabase, dropTestDatabases } from '../support/postgres.ts';

const P = 'police.example';
const F = 'fire.example';
const user = (n: number): McUri => `sip:u${String(n).padStart(4, '0')}@${P}` as McUri;
const group = (n: number): McUri => `sip:g${n}@${F}` as McUri;
const USERS = 600;
/** Police holds only its first users' records; the rest at fire are left over. */
const HELD = 150;
const GROUPS = 3;
const GRACE_MS = 5000;

/** A settable clock for both systems: records are written "long ago", then the re-sync runs "now". */
const clock: Clock & { t: number } = { t: 1_800_000_000_000, now: () => clock.t, after: () => () => undefined };

function configOf(name: string, domain: string, partner: string, dir: string, store?: string) {
  const groups = domain === F ? Array.from({ length: GROUPS }, (_, i) => ({ id: group(i), services: ['mcptt'], members: Array.from({ length: USERS }, (_, u) => user(u)) })) : [];
  return resolveConfig({
    dataDir: dir,
    systems: [{ name, domain, http: { port: 0 }, secret: `${name}-secret`, partners: [{ domain: partner, url: 'http://127.0.0.1:9', secret: 'shared' }], groups, ...(store ? { store } : {}) }],
  })[0]!;
}

/** Writes records straight into a store (and the host's GMS), as an applied request, a crash or an old export leaves them. */
async function put(server: McServiceServer, userId: McUri, groupIds: McUri[]): Promise<void> {
  const tellGms = server.domain === F ? groupIds.map((groupId) => ({ groupId, status: 'affiliated' as const })) : [];
  await server.store.changeAffiliations(userId, 'mcptt', () => ({ put: groupIds.map((groupId) => ({ groupId, state: 'affiliated' as const })), remove: [], tellGms, events: [], result: null }));
}
/** Police and fire opened on fresh SQLite files (not listening: no re-synchronisation of their own), then closed. */
async function withPolicePair(work: (police: McSystem, fire: McSystem) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'muster-resync-'));
  const silent = pino({ level: 'silent' });
  const police = await McSystem.open(configOf('police', P, F, dir), { clock, log: silent });
  const fire = await McSystem.open(configOf('fire', F, P, dir), { clock, log: silent });
  try {
    await work(police, fire);
  } finally {
    await police.stop();
    await fire.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Two instances of police on one PostgreSQL database (two McSystems in this process, as two processes would share it), and fire. */
async function withPoliceInstances(work: (a: McSystem, b: McSystem, fire: McSystem) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'muster-resync-'));
  const db = await createTestDatabase();
  const silent = pino({ level: 'silent' });
  const opened: McSystem[] = [];
  try {
    for (let i = 0; i < 2; i++) opened.push(await McSystem.open(configOf('police', P, F, dir, db.url), { clock, log: silent }));
    opened.push(await McSystem.open(configOf('fire', F, P, dir), { clock, log: silent }));
    await work(opened[0]!, opened[1]!, opened[2]!);
  } finally {
    for (const s of opened.reverse()) await s.stop();
    await dropTestDatabases([db.name]);
    rmSync(dir, { recursive: true, force: true });
  }
}

const policeMembers = async (fire: McSystem, g: McUri): Promise<string[]> => (await fire.gms.affiliatedMembers(g, 'mcptt')).map((m) => m.userId).filter((id) => id.endsWith(`@${P}`)).sort();

void test('paged re-synchronisation: the host ends with exactly the primary\'s records of its users; other users untouched', () =>
  withPolicePair(async (police, fire) => {
    // Police holds users 0..149 in g0 and g1 (300 records: two pages); fire lost 7 of them, and holds 1,500 records
    // police does not: g0 and g1 of users 150..599 and g2 of users 0..499 long ago, g2 of users 500..599 just now;
    // plus an ambulance user's record in g2.
    const lost = [3, 50, 51, 101, 102, 103, 149].map(user);
    for (let u = 0; u < USERS; u++) {
      if (u < HELD) await put(police.server, user(u), [group(0), group(1)]);
      await put(fire.server, user(u), lost.includes(user(u)) ? [group(1)] : [group(0), group(1)]);
      if (u < 500) await put(fire.server, user(u), [group(2)]);
    }
    const amy = `sip:amy@ambulance.example` as McUri;
    await put(fire.server, amy, [group(2)]);
    clock.t += 60_000;
    for (let u = 500; u < 600; u++) await put(fire.server, user(u), [group(2)]);
    clock.t += GRACE_MS - 1000; // those 100 are still within the grace

    let pages = 0;
    let stoppedShort = 0;
    const partners = standInPartners(F, {
      affiliate: async (req) => (await affiliateAsGroupHost(fire.server, req)).status,
      deaffiliate: async (req) => (await deaffiliateAsGroupHost(fire.server, req)).status,
      async resync(page) {
        pages++;
        assert.ok(page.affiliations.length <= RESYNC_PAGE);
        const answer = await resyncAsGroupHost(fire.server, { origin: P, ...page, graceMs: GRACE_MS });
        if (page.through && answer.through && resyncKeyOf(answer.through) !== resyncKeyOf(page.through)) stoppedShort++;
        if (!page.through && answer.through) stoppedShort++;
        return { kind: 'answered', answer };
      },
    });
    const report = await resyncPartner({ ...police.server, partners }, F, { reason: 'test', deadline: clock.now() + 60_000 });

    assert.equal(report.complete, true, report.error);
    assert.ok(pages >= (HELD * 2) / RESYNC_PAGE + 1, `${pages} pages`);
    assert.ok(stoppedShort > 0, `the host read more than ${HOST_READ_LIMIT} records in one page's range at least once`);
    assert.equal(report.removed.length, (USERS - HELD) * 2 + 500);
    assert.equal(report.spared.length, 100);
    assert.deepEqual(report.reasked.map((r) => `${r.userId} ${r.outcome}`).sort(), lost.map((u) => `${u} agreed`).sort());

    const atFire = await fire.server.store.affiliationsAcrossDomains({ userDomain: P, groupDomain: F, limit: 10_000 });
    const atPolice = await police.server.store.affiliationsAcrossDomains({ userDomain: P, groupDomain: F, limit: 10_000 });
    const spared = new Set(report.spared.map(resyncKeyOf));
    assert.deepEqual(atFire.map(resyncKeyOf).filter((k) => !spared.has(k)), atPolice.map(resyncKeyOf));
    // Fire's GMS learnt the removals (only the spared ones are left in g2) and the re-asked ones (back in g0).
    assert.deepEqual(await policeMembers(fire, group(2)), Array.from({ length: 100 }, (_, i) => user(500 + i)));
    assert.deepEqual(await policeMembers(fire, group(0)), Array.from({ length: HELD }, (_, i) => user(i)));
    assert.deepEqual((await fire.server.store.affiliationsOfUser(amy)).map((r) => r.groupId), [group(2)], "ambulance's user untouched");

    // Once the grace has passed, a second run removes what was spared and changes nothing else.
    clock.t += GRACE_MS;
    const again = await resyncPartner({ ...police.server, partners }, F, { reason: 'test', deadline: clock.now() + 60_000 });
    assert.equal(again.complete, true);
    assert.deepEqual([again.removed.length, again.spared.length, again.reasked.length], [100, 0, 0]);
    const after = await fire.server.store.affiliationsAcrossDomains({ userDomain: P, groupDomain: F, limit: 10_000 });
    assert.deepEqual(after.map(resyncKeyOf), atPolice.map(resyncKeyOf));
    assert.deepEqual(await policeMembers(fire, group(2)), []);
  }));

void test('pages stay under the body limit with long IDs: cut by size, and every record still compared', () =>
  withPolicePair(async (police, fire) => {
    const long = (n: number): McUri => `sip:${'x'.repeat(220)}${String(n).padStart(4, '0')}@${P}` as McUri;
    for (let u = 0; u < 300; u++) {
      await put(police.server, long(u), [group(0)]);
      await put(fire.server, long(u), [group(0)]);
    }
    const sizes: number[] = [];
    const partners = standInPartners(F, {
      resync: async (page) => {
        sizes.push(JSON.stringify(page.affiliations.map((k) => ({ mcServiceId: k.userId, service: k.service, groupId: k.groupId }))).length);
        return { kind: 'answered' as const, answer: await resyncAsGroupHost(fire.server, { origin: P, ...page, graceMs: GRACE_MS }) };
      },
    });
    const report = await resyncPartner({ ...police.server, partners }, F, { reason: 'test', deadline: clock.now() + 60_000 });
    assert.equal(report.complete, true, report.error);
    assert.deepEqual([report.removed.length, report.reasked.length], [0, 0]);
    assert.ok(sizes.length >= 2, `${sizes.length} pages for 300 long records`);
    assert.ok(Math.max(...sizes) <= RESYNC_PAGE_BYTES, `largest page ${Math.max(...sizes)} bytes`);
  }));

/**
 * The host has applied a de-affiliation whose answer has not reached the primary yet (another partner of the request
 * is slow); a re-synchronisation meanwhile, at `resyncAt`, must not ask the host for it again: the host would keep
 * what the primary then drops. `leavingAt` and `resyncAt` are one instance, or two sharing the store.
 */
async function deaffiliationOnItsWay(leavingAt: McSystem, resyncAt: McSystem, fire: McSystem): Promise<void> {
  await put(leavingAt.server, user(0), [group(0)]);
  await put(fire.server, user(0), [group(0)]);
  clock.t += 60_000;
  let release!: () => void;
  const held = new Promise<void>((r) => (release = r));
  const partners = standInPartners(F, {
    // The host removes at once; the answer reaches the primary only later.
    deaffiliate: async (req) => {
      const status = (await deaffiliateAsGroupHost(fire.server, req)).status;
      await held;
      return status;
    },
    affiliate: async (req) => (await affiliateAsGroupHost(fire.server, req)).status,
    resync: async (page) => ({ kind: 'answered' as const, answer: await resyncAsGroupHost(fire.server, { origin: P, ...page, graceMs: GRACE_MS }) }),
  });
  const leaving = deaffiliate({ ...leavingAt.server, partners }, { mcServiceId: user(0), service: 'mcptt', groupIds: [group(0)] });
  for (let i = 0; i < 100 && (await fire.server.store.affiliationsOfUser(user(0))).length > 0; i++) await new Promise((r) => setTimeout(r, 10));
  assert.deepEqual(await fire.server.store.affiliationsOfUser(user(0)), [], 'the host applied the de-affiliation');

  const report = await resyncPartner({ ...resyncAt.server, partners }, F, { reason: 'test', deadline: clock.now() + 60_000 });
  assert.deepEqual(report.reasked, []);
  assert.deepEqual(report.skipped, [{ userId: user(0), service: 'mcptt', groupId: group(0), why: 'in-flight' }]);

  release();
  assert.deepEqual((await leaving).status, [{ groupId: group(0), status: 'deaffiliated' }]);
  assert.deepEqual(await resyncAt.server.store.affiliationsOfUser(user(0)), []);
  assert.deepEqual(await fire.server.store.affiliationsOfUser(user(0)), [], 'both agree: not affiliated');
  assert.deepEqual(await resyncAt.server.store.forwardedGroups(user(0), 'mcptt'), []);
}

void test('a de-affiliation the host has applied but the primary has not stored yet is not asked for again', () => withPolicePair((police, fire) => deaffiliationOnItsWay(police, police, fire)));

void test('a de-affiliation on its way at one instance is not asked for again by another instance sharing the store (PostgreSQL)', () => withPoliceInstances((a, b, fire) => deaffiliationOnItsWay(a, b, fire)));

void test('a page the host refuses for now (429) is read again before it is sent again: what was affiliated meanwhile is in it', () =>
  withPolicePair(async (police, fire) => {
    await put(police.server, user(1), [group(0)]);
    await put(fire.server, user(1), [group(0)]);
    const waits: number[] = [];
    const waiting: Clock = { now: () => clock.now(), after: (ms, fire) => (waits.push(ms), setImmediate(fire), () => undefined) };
    const sentPages: string[][] = [];
    const partners = standInPartners(F, {
      async resync(page) {
        sentPages.push(page.affiliations.map(resyncKeyOf));
        if (sentPages.length === 1) {
          // While the host is busy, user 2 affiliates to g1 (host and primary both store it).
          await put(fire.server, user(2), [group(1)]);
          await put(police.server, user(2), [group(1)]);
          return { kind: 'rate-limited', retryAfterMs: 1500 };
        }
        return { kind: 'answered', answer: await resyncAsGroupHost(fire.server, { origin: P, ...page, graceMs: GRACE_MS }) };
      },
    });
    clock.t += GRACE_MS * 10; // user 2's record at the host is "old" by the time the page arrives
    const report = await resyncPartner({ ...police.server, partners, clock: waiting }, F, { reason: 'test', deadline: clock.now() + 60_000 });
    assert.equal(report.complete, true, report.error);
    assert.deepEqual(waits, [1500], 'waited as the host said');
    assert.deepEqual(sentPages[1], [resyncKeyOf({ userId: user(1), service: 'mcptt', groupId: group(0) }), resyncKeyOf({ userId: user(2), service: 'mcptt', groupId: group(1) })]);
    assert.deepEqual(report.removed, [], 'the host removed nothing the primary holds');
    assert.deepEqual((await fire.server.store.affiliationsOfUser(user(2))).map((r) => r.groupId), [group(1)]);

    // A host that stays busy, asking for a minute each time: each wait is at most RESYNC_RETRY_AFTER_MAX_MS, and the
    // run gives up after RESYNC_RATE_LIMITED_ATTEMPTS, to be tried later.
    let refusals = 0;
    waits.length = 0;
    const busy = standInPartners(F, { resync: async () => (refusals++, { kind: 'rate-limited', retryAfterMs: 60_000 }) });
    const gaveUp = await resyncPartner({ ...police.server, partners: busy, clock: waiting }, F, { reason: 'test', deadline: clock.now() + 60_000 });
    assert.deepEqual([gaveUp.complete, gaveUp.error, refusals], [false, 'rate-limited by the partner', RESYNC_RATE_LIMITED_ATTEMPTS]);
    assert.deepEqual(new Set(waits), new Set([RESYNC_RETRY_AFTER_MAX_MS]), 'a minute asked, at most the cap waited');
  }));
