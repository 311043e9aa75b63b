// Three MC systems (police, fire, ambulance), one `muster serve` process each, partners of one another, plus
// tiny node:http stand-ins for intermediate signalling nodes (a relay that can be slow or garble answers).
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import assert from 'node:assert/strict';
import { call, freePort, Muster, secret, type RawSystem } from './harness.ts';

export const P = 'police.example';
export const F = 'fire.example';
export const A = 'ambulance.example';

export const user = (name: string, domain = P): string => `sip:${name}@${domain}`;
export const group = (name: string, domain: string): string => `sip:${name}@${domain}`;

// Groups of each system.
export const patrol = group('patrol', P);
export const north = group('north', P);
export const engine = group('engine', F);
export const rescue = group('rescue', F);
export const hazmat = group('hazmat', F); // alice is not a member
export const ladder = group('ladder', F); // members may not leave
export const medic = group('medic', A);
export const triage = group('triage', A);
export const FIRE_GROUPS = [engine, rescue, hazmat, ladder];
export const AMBULANCE_GROUPS = [medic, triage];

export const alice = user('alice');
export const bob = user('bob');
export const carol = user('carol');
export const dave = user('dave');
export const dispatch = user('dispatch');
const SUBSCRIBED = [patrol, north, engine, rescue, hazmat, ladder, medic, triage];

export interface PartnerRoute {
  /** `via:` of police's partner entry (an intermediate node), or none. */
  via?: string;
  timeoutMs?: number;
}

export interface ThreeSystemsOptions {
  /** Police's routes to fire and to ambulance, given the systems' URLs (known before they start). */
  routes?: (urls: { police: string; fire: string; ambulance: string }) => Promise<{ toFire?: PartnerRoute; toAmbulance?: PartnerRoute }>;
  negotiationTimeoutSeconds?: number;
  /** Police's `sip` configuration key, for tests of the SIP face with partner groups. */
  policeSip?: Record<string, unknown>;
}

export interface ThreeSystems {
  police: Muster;
  fire: Muster;
  ambulance: Muster;
  urls: { police: string; fire: string; ambulance: string };
  secrets: { policeFire: string; policeAmbulance: string; fireAmbulance: string };
  stop(): Promise<void>;
}

/** Starts police, fire and ambulance, one process each, on pre-allocated loopback ports. */
export async function startThreeSystems(opts: ThreeSystemsOptions = {}): Promise<ThreeSystems> {
  const [pp, fp, ap] = [await freePort(), await freePort(), await freePort()];
  const urls = { police: `http://127.0.0.1:${pp}`, fire: `http://127.0.0.1:${fp}`, ambulance: `http://127.0.0.1:${ap}` };
  const secrets = { policeFire: secret(), policeAmbulance: secret(), fireAmbulance: secret() };
  const routes = opts.routes ? await opts.routes(urls) : {};
  const route = (r: PartnerRoute | undefined): Record<string, unknown> => ({ ...(r?.via ? { via: r.via } : {}), ...(r?.timeoutMs ? { timeoutMs: r.timeoutMs } : {}) });
  const police: RawSystem = {
    name: 'police',
    domain: P,
    http: { port: pp },
    secret: secret(),
    ...(opts.policeSip ? { sip: opts.policeSip } : {}),
    partners: [
      { domain: F, url: urls.fire, secret: secrets.policeFire, ...route(routes.toFire) },
      { domain: A, url: urls.ambulance, secret: secrets.policeAmbulance, ...route(routes.toAmbulance) },
    ],
    users: [
      { id: alice, services: ['mcptt', 'mcdata'], n2: 3, groups: SUBSCRIBED },
      { id: bob, services: ['mcptt'], n2: 6, groups: SUBSCRIBED },
      { id: carol, services: ['mcptt'], n2: 6, groups: SUBSCRIBED },
      { id: dave, services: ['mcptt'], n2: 6, groups: SUBSCRIBED },
      { id: dispatch, services: ['mcptt'], n2: 10, groups: [patrol], remoteChange: true },
    ],
    groups: [
      { id: patrol, services: ['mcptt'], members: [alice, bob, carol, dave, dispatch] },
      { id: north, services: ['mcptt'], members: [alice, bob, carol, dave] },
    ],
  };
  const fire: RawSystem = {
    name: 'fire',
    domain: F,
    http: { port: fp },
    secret: secret(),
    partners: [
      { domain: P, url: urls.police, secret: secrets.policeFire },
      { domain: A, url: urls.ambulance, secret: secrets.fireAmbulance },
    ],
    users: [{ id: user('fred', F), services: ['mcptt'], n2: 4, groups: [group('engine', F)] }],
    groups: [
      { id: engine, services: ['mcptt'], members: [alice, bob, carol, dave, user('fred', F)] },
      { id: rescue, services: ['mcptt'], members: [alice, bob, carol, dave] },
      { id: hazmat, services: ['mcptt'], members: [user('fred', F)] },
      { id: ladder, services: ['mcptt'], members: [alice, bob, carol, dave], deaffiliationForbidden: true },
    ],
  };
  const ambulance: RawSystem = {
    name: 'ambulance',
    domain: A,
    http: { port: ap },
    secret: secret(),
    partners: [
      { domain: P, url: urls.police, secret: secrets.policeAmbulance },
      { domain: F, url: urls.fire, secret: secrets.fireAmbulance },
    ],
    users: [{ id: user('amy', A), services: ['mcptt'], n2: 4, groups: [medic] }],
    groups: [
      { id: medic, services: ['mcptt'], members: [alice, bob, carol, dave, user('amy', A)] },
      { id: triage, services: ['mcptt'], members: [alice, bob, carol, dave] },
    ],
  };
  const nt = opts.negotiationTimeoutSeconds ? { negotiationTimeoutSeconds: opts.negotiationTimeoutSeconds } : {};
  const started = await Promise.allSettled([Muster.start({ ...nt, systems: [police] }), Muster.start({ ...nt, systems: [fire] }), Muster.start({ ...nt, systems: [ambulance] })]);
  const ok = started.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
  const failed = started.find((s) => s.status === 'rejected');
  if (failed) {
    await Promise.allSettled(ok.map((m) => m.stop()));
    throw failed.reason;
  }
  const [pm, fm, am] = ok as [Muster, Muster, Muster];
  return { police: pm, fire: fm, ambulance: am, urls, secrets, stop: async () => void (await Promise.allSettled([pm.stop(), fm.stop(), am.stop()])) };
}

/** The three systems with police reaching fire through a Relay; `timeoutMs` to both partners; stop() stops the relay too. */
export async function startWithRelayToFire(timeoutMs: number): Promise<ThreeSystems & { toFire: Relay }> {
  let toFire: Relay | undefined;
  try {
    const sys = await startThreeSystems({
      routes: async (urls) => {
        toFire = await Relay.start(urls.fire);
        return { toFire: { via: toFire.url, timeoutMs }, toAmbulance: { timeoutMs } };
      },
    });
    const relay = toFire!;
    return { ...sys, toFire: relay, stop: async () => void (await Promise.allSettled([sys.stop(), relay.stop()])) };
  } catch (e) {
    await toFire?.stop();
    throw e;
  }
}

export async function affiliate(sys: ThreeSystems, who: string, groupIds: string[], path = 'affiliations', service = 'mcptt') {
  const r = await call('POST', `${sys.urls.police}/mc/v1/${path}`, await sys.police.token(who), { mcServiceId: who, service, groupIds });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body as { status: { groupId: string; status: string; reason?: string }[] };
}

export const deaffiliate = (sys: ThreeSystems, who: string, groupIds: string[]) => affiliate(sys, who, groupIds, 'deaffiliations');

/** groupId -> "affiliated" | "rejected:<reason>" | "deaffiliated", for compact assertions. */
export function statusMap(body: { status: { groupId: string; status: string; reason?: string }[] }): Record<string, string> {
  return Object.fromEntries(body.status.map((s) => [s.groupId, s.reason ? `${s.status}:${s.reason}` : s.status]));
}

/** The user's records at the primary: groupId -> state (affiliated | reserved). */
export async function primaryRecords(sys: ThreeSystems, who: string, service = 'mcptt'): Promise<Record<string, string>> {
  const r = await call('GET', `${sys.urls.police}/mc/v1/users/${encodeURIComponent(who)}/affiliations?service=${service}`, await sys.police.operatorToken(P));
  if (r.status === 404) return {};
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return Object.fromEntries(((r.body as { affiliations: unknown[] }).affiliations as { groupId: string; state: string }[]).map((a) => [a.groupId, a.state]));
}

/** The partner groups (of fire and ambulance) whose GMS lists `who` as affiliated. */
export async function partnerGmsGroups(sys: ThreeSystems, who: string, service = 'mcptt'): Promise<string[]> {
  const out: string[] = [];
  for (const [m, domain, groups] of [
    [sys.fire, F, FIRE_GROUPS],
    [sys.ambulance, A, AMBULANCE_GROUPS],
  ] as const) {
    const token = await m.operatorToken(domain);
    for (const g of groups) {
      const r = await call('GET', `${m.url()}/gms/v1/groups/${encodeURIComponent(g)}/affiliations?service=${service}`, token);
      assert.equal(r.status, 200, JSON.stringify(r.body));
      if (((r.body as { members: unknown[] }).members as { mcServiceId: string }[]).some((x) => x.mcServiceId === who)) out.push(g);
    }
  }
  return out.sort();
}

/**
 * The agreement check: no reservation left at the primary, and the user's partner-group affiliations at the
 * primary equal the partner GMSs' member lists for that user. GMS updates and undo requests are asynchronous,
 * so it waits (bounded) for agreement; returns the partner groups both sides hold.
 */
export async function assertAgreement(sys: ThreeSystems, who: string, expected?: string[], waitMs = 8000): Promise<string[]> {
  const until = Date.now() + waitMs;
  for (;;) {
    const records = await primaryRecords(sys, who);
    const reserved = Object.entries(records).filter(([, s]) => s !== 'affiliated');
    const atPrimary = Object.keys(records)
      .filter((g) => !g.endsWith(`@${P}`) && records[g] === 'affiliated')
      .sort();
    const atPartners = await partnerGmsGroups(sys, who);
    const agree = reserved.length === 0 && JSON.stringify(atPrimary) === JSON.stringify(atPartners) && (!expected || JSON.stringify(atPrimary) === JSON.stringify([...expected].sort()));
    if (agree) return atPrimary;
    if (Date.now() > until) {
      assert.fail(`primary and partners disagree for ${who}: primary ${JSON.stringify(records)}, partner GMSs ${JSON.stringify(atPartners)}${expected ? `, expected ${JSON.stringify(expected)}` : ''}`);
    }
    await sleep(150);
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export type RelayMode =
  | { kind: 'pass' }
  /** Forwards the request at once, holds the answer back for `ms`. */
  | { kind: 'slow'; ms: number }
  /** Forwards the request, then answers `body` (with `status`) instead of the partner's answer. */
  | { kind: 'garble'; status: number; body: string }
  /** Answers `body` without forwarding anything; with `path`, only requests whose path starts with it (the rest pass). */
  | { kind: 'junk'; status: number; body: string; path?: string };

/** A plain HTTP intermediate node in front of `target`: forwards path, headers and body; its mode can be switched. */
export class Relay {
  mode: RelayMode = { kind: 'pass' };
  /** Requests seen: method, path and body. */
  readonly seen: { path: string; body: string; authorization: string | undefined }[] = [];
  private constructor(
    private readonly server: Server,
    readonly url: string,
    private readonly target: string,
  ) {}

  static async start(target: string, port?: number): Promise<Relay> {
    const p = port ?? (await freePort());
    const holder: { relay?: Relay } = {};
    const server = createServer((req, res) => void holder.relay!.handle(req, res));
    await new Promise<void>((resolve) => server.listen(p, '127.0.0.1', resolve));
    holder.relay = new Relay(server, `http://127.0.0.1:${p}`, target);
    return holder.relay;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks).toString();
    this.seen.push({ path: req.url ?? '', body, authorization: req.headers.authorization });
    const mode = this.mode;
    if (mode.kind === 'junk' && (mode.path === undefined || (req.url ?? '').startsWith(mode.path))) {
      res.writeHead(mode.status, { 'content-type': 'application/json' }).end(mode.body);
      return;
    }
    let answer: { status: number; body: string };
    try {
      answer = await forward(`${this.target}${req.url ?? ''}`, req.method ?? 'GET', req.headers.authorization, body);
    } catch {
      res.writeHead(502).end();
      return;
    }
    if (mode.kind === 'slow') await sleep(mode.ms);
    if (mode.kind === 'garble') answer = { status: mode.status, body: mode.body };
    if (!res.destroyed) res.writeHead(answer.status, { 'content-type': 'application/json' }).end(answer.body);
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

function forward(url: string, method: string, authorization: string | undefined, body: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method, headers: { 'content-type': 'application/json', ...(authorization ? { authorization } : {}) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 502, body: Buffer.concat(chunks).toString() }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

export interface ChangeEvent {
  id: string;
  mode: string;
  actor: string;
  target: string;
  affiliate: string[];
  deaffiliate: string[];
  status?: { groupId: string; status: string; reason?: string }[];
}

const returnedChanges = new Set<string>();

/**
 * Opens the user's SSE stream at the primary and resolves with the first affiliation-change event that matches
 * and was not returned before (the stream replays a user's earlier events).
 */
export async function nextChangeEvent(sys: ThreeSystems, who: string, match: (e: ChangeEvent) => boolean = () => true, ms = 10_000): Promise<ChangeEvent> {
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), ms);
  try {
    const res = await fetch(`${sys.urls.police}/mc/v1/events`, { headers: { authorization: `Bearer ${await sys.police.token(who)}`, accept: 'text/event-stream' }, signal: ac.signal });
    assert.equal(res.status, 200);
    const decoder = new TextDecoder();
    let buf = '';
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      buf += decoder.decode(chunk, { stream: true });
      let end: number;
      while ((end = buf.indexOf('\n\n')) >= 0) {
        const block = buf.slice(0, end);
        buf = buf.slice(end + 2);
        const type = /^event: (.*)$/m.exec(block)?.[1];
        const data = block
          .split('\n')
          .filter((l) => l.startsWith('data: '))
          .map((l) => l.slice(6))
          .join('\n');
        if (type === 'affiliation-change' && data) {
          const e = JSON.parse(data) as ChangeEvent;
          if (!returnedChanges.has(`${e.id} ${e.target}`) && match(e)) {
            returnedChanges.add(`${e.id} ${e.target}`);
            return e;
          }
        }
      }
    }
    throw new Error(`stream of ${who} ended without the change event`);
  } finally {
    clearTimeout(timer);
    ac.abort();
  }
}

export async function change(sys: ThreeSystems, body: { mode: 'mandatory' | 'negotiated'; targets: string[]; affiliate?: string[]; deaffiliate?: string[] }, actor = dispatch) {
  const r = await call('POST', `${sys.urls.police}/mc/v1/affiliation-changes`, await sys.police.token(actor), { mcServiceId: actor, service: 'mcptt', ...body });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body as { id: string; results: { target: string; outcome: string; status: { groupId: string; status: string; reason?: string }[] }[] };
}

export async function answerChange(sys: ThreeSystems, who: string, id: string, accept: boolean) {
  return call('POST', `${sys.urls.police}/mc/v1/affiliation-changes/${encodeURIComponent(id)}/answer`, await sys.police.token(who), { accept });
}
