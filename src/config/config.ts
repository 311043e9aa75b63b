// Reads and checks the configuration file: schema first, then IDs and cross references, each error with its path.
import { readFileSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { dirname, join, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { Compile } from 'typebox/compile';
import { ConfigSchema } from './config-schema.ts';
import { InvalidId, parseMcUri, domainOf, lineTextFault, type McUri } from '../domain/ids.ts';
import type { UserProfile, RemoteChangeRight } from '../domain/profile.ts';
import type { GroupPolicy } from '../domain/group-policy.ts';

export interface PartnerConfig {
  domain: string;
  url: string;
  /** Where requests are sent: the partner itself, or an intermediate signalling node in front of it. */
  nextHop: string;
  secret: string;
  timeoutMs: number;
  /**
   * The partner at `nextHop` when it is an intermediate Muster node (`via` is that partner's `url`): it relays only for
   * a partner it identifies at its hop, so requests carry a hop credential signed for it beside the end-to-end one.
   */
  viaPartner?: string;
}

export interface GmsConfig {
  url: string;
  /** The server credential the GMS's system issued to this MC service server (its subject is the updates' source). */
  credential: string;
  /** Bound of each request to the GMS: a policy fetch, a status update delivery, the health probe. */
  timeoutMs: number;
}

/** A GMS elsewhere answers within this, or its groups without a cached policy are refused (GMS_UNAVAILABLE). */
export const DEFAULT_GMS_TIMEOUT_MS = 2000;

export interface SystemConfig {
  name: string;
  domain: string;
  http: { host: string; port: number };
  sip?: { host: string; port: number; transports: ('udp' | 'tcp')[]; trustedPeers: string[]; psi: string; digestAlgorithms: ('SHA-256' | 'MD5')[]; maxSubscriptionsPerWatcher: number; advertisedHost?: string };
  store: string;
  nats?: string;
  secret: string;
  /** A GMS elsewhere (another Muster system's /gms/v1); absent: the GMS runs in this process on the same store. */
  gms?: GmsConfig;
  /** `gms`: a group management server only, for MC service servers elsewhere. */
  role: 'mc-and-gms' | 'gms';
  partners: PartnerConfig[];
  users: UserProfile[];
  groups: GroupPolicy[];
  negotiationTimeoutMs: number;
  eventRetentionMs: number;
  auditRetentionMs: number;
  dataDir: string;
  logLevel: string;
  /** Per credential subject and server instance (issue 7). */
  rateLimit: { perSecond: number; burst: number };
  /** Requests one server instance works on at once before it sheds load with 503. */
  maxInFlight: number;
  /** As an intermediate signalling node: relayed requests one server instance has under way to one next hop. */
  maxRelaysInFlight: number;
  /** As an intermediate signalling node: the intermediaries (Via) a relayed request may pass, this system included. */
  maxIntermediateNodes: number;
}

/**
 * Defaults with headroom: a client that fires a few hundred requests at once (a dispatcher console reconnecting, the
 * e2e races of 200 requests of one user) is served; one that keeps up more than 200 requests a second is not.
 */
export const DEFAULT_RATE_LIMIT = { perSecond: 200, burst: 500 } as const;
export const DEFAULT_MAX_IN_FLIGHT = 1024;
/** An eighth of DEFAULT_MAX_IN_FLIGHT: a flood relayed to one next hop leaves this system room for its own users. */
export const DEFAULT_MAX_RELAYS_IN_FLIGHT = 128;
/** Room for paths far longer than a federation needs (one node, two at most), short enough that a loop ends at once. */
export const DEFAULT_MAX_INTERMEDIATE_NODES = 8;

export class ConfigError extends Error {
  constructor(
    readonly path: string,
    why: string,
  ) {
    super(`${path}: ${why}`);
  }
}

const checkConfig = Compile(ConfigSchema);

export function loadConfig(file: string): SystemConfig[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError(file, `cannot read: ${(e as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = file.endsWith('.json') ? JSON.parse(text) : parseYaml(text, { maxAliasCount: 100 });
  } catch (e) {
    throw new ConfigError(file, `not valid ${file.endsWith('.json') ? 'JSON' : 'YAML'}: ${(e as Error).message}`);
  }
  return resolveConfig(raw, dirname(resolve(file)));
}

/** Checks a parsed configuration; `baseDir` is where relative `file:` secrets are found. */
export function resolveConfig(raw: unknown, baseDir = process.cwd()): SystemConfig[] {
  if (!checkConfig.Check(raw)) {
    const all = [...checkConfig.Errors(raw)];
    // An unknown key shows up twice; the additionalProperties error is the one that says which key.
    const extra = all.find((e) => e.keyword === 'boolean' && all.some((o) => o.keyword === 'additionalProperties'));
    if (extra) throw new ConfigError(pointerToPath(extra.instancePath), 'unknown key');
    const first = all[0];
    const path = first ? pointerToPath(first.instancePath) : '';
    throw new ConfigError(path || '(root)', first?.message ?? 'invalid');
  }
  const cfg = raw;
  const dataDir = resolve(cfg.dataDir ?? 'data');
  const names = new Set<string>();
  const domains = new Set<string>();
  const ports = new Set<string>();
  return cfg.systems.map((s, si) => {
    const at = `systems[${si}]`;
    if (names.has(s.name)) throw new ConfigError(`${at}.name`, `repeats system name ${s.name}`);
    names.add(s.name);
    const domain = s.domain.toLowerCase();
    if (domains.has(domain)) throw new ConfigError(`${at}.domain`, `repeats domain ${domain}`);
    domains.add(domain);
    const host = s.http.host ?? '127.0.0.1';
    const portKey = `${host}:${s.http.port}`;
    if (s.http.port !== 0 && ports.has(portKey)) throw new ConfigError(`${at}.http.port`, `port ${portKey} is used twice`);
    ports.add(portKey);

    const id = (value: string, path: string): McUri => {
      try {
        return parseMcUri(value);
      } catch (e) {
        if (e instanceof InvalidId) throw new ConfigError(path, `${JSON.stringify(value)} ${e.why}`);
        throw e;
      }
    };
    const partners: PartnerConfig[] = (s.partners ?? []).map((p, pi) => {
      const pd = p.domain.toLowerCase();
      if (pd === domain) throw new ConfigError(`${at}.partners[${pi}].domain`, 'a system is not its own partner');
      return {
        domain: pd,
        url: checkUrl(p.url, `${at}.partners[${pi}].url`),
        nextHop: checkUrl(p.via ?? p.url, `${at}.partners[${pi}].via`),
        secret: resolveSecret(p.secret, `${at}.partners[${pi}].secret`, baseDir),
        timeoutMs: p.timeoutMs ?? cfg.partnerTimeoutMs ?? 5000,
      };
    });
    // A next hop that is another partner's URL is that partner, an intermediate Muster node: it wants our hop credential.
    const sameUrl = (a: string, b: string): boolean => new URL(a).href.replace(/\/+$/, '') === new URL(b).href.replace(/\/+$/, '');
    for (const p of partners) {
      const node = sameUrl(p.nextHop, p.url) ? undefined : partners.find((q) => q !== p && sameUrl(q.url, p.nextHop));
      if (node) p.viaPartner = node.domain;
    }
    const partnerDomains = new Set(partners.map((p) => p.domain));
    const role = s.role ?? 'mc-and-gms';
    const gms: GmsConfig | undefined = s.gms && {
      url: checkUrl(s.gms.url, `${at}.gms.url`),
      credential: resolveSecret(s.gms.credential, `${at}.gms.credential`, baseDir),
      timeoutMs: s.gms.timeoutMs ?? DEFAULT_GMS_TIMEOUT_MS,
    };
    if (gms && role === 'gms') throw new ConfigError(`${at}.gms`, 'a GMS-only system (role: gms) is its own GMS');
    if (gms && (s.groups ?? []).length > 0) throw new ConfigError(`${at}.groups`, `the groups live in the GMS at ${gms.url} (gms is set): define them there`);
    if (role === 'gms' && (s.users ?? []).length > 0) throw new ConfigError(`${at}.users`, 'a GMS-only system (role: gms) has no users: its MC service server keeps them');
    const groups: GroupPolicy[] = (s.groups ?? []).map((g, gi) => {
      const gid = id(g.id, `${at}.groups[${gi}].id`);
      if (domainOf(gid) !== domain) throw new ConfigError(`${at}.groups[${gi}].id`, `group ${gid} is not of this system's domain ${domain}`);
      return {
        id: gid,
        ...(g.displayName !== undefined ? { displayName: displayName(g.displayName, `${at}.groups[${gi}].displayName`) } : {}),
        services: [...new Set(g.services)],
        enabled: g.enabled ?? true,
        members: g.members.map((m, mi) => id(m, `${at}.groups[${gi}].members[${mi}]`)),
        deaffiliationForbidden: g.deaffiliationForbidden ?? false,
        revision: 1,
      };
    });
    const groupIds = new Set<string>(groups.map((g) => g.id));
    if (groupIds.size !== groups.length) throw new ConfigError(`${at}.groups`, 'a group ID is defined twice');
    const users: UserProfile[] = (s.users ?? []).map((u, ui) => {
      const path = `${at}.users[${ui}]`;
      const uid = id(u.id, `${path}.id`);
      if (domainOf(uid) !== domain) throw new ConfigError(`${path}.id`, `user ${uid} is not of this system's domain ${domain}`);
      const ugroups = u.groups.map((g, gi) => {
        const gid = id(g, `${path}.groups[${gi}]`);
        const gd = domainOf(gid) ?? '';
        // With a GMS elsewhere the own groups are its to know; it is asked on the first request.
        if (gd === domain ? !gms && !groupIds.has(gid) : !partnerDomains.has(gd)) {
          throw new ConfigError(`${path}.groups[${gi}]`, gd === domain ? `no group ${gid} in this system` : `no partner system for domain ${gd}`);
        }
        return gid;
      });
      let remoteChange: RemoteChangeRight = false;
      if (u.remoteChange === true) remoteChange = true;
      else if (typeof u.remoteChange === 'object') {
        remoteChange = {
          ...(u.remoteChange.users ? { users: u.remoteChange.users.map((x, i) => id(x, `${path}.remoteChange.users[${i}]`)) } : {}),
          ...(u.remoteChange.groups ? { groups: u.remoteChange.groups.map((x, i) => id(x, `${path}.remoteChange.groups[${i}]`)) } : {}),
        };
      }
      return { id: uid, services: [...new Set(u.services)], n2: u.n2, groups: ugroups, remoteChange };
    });
    const userIds = new Set<string>(users.map((u) => u.id));
    if (userIds.size !== users.length) throw new ConfigError(`${at}.users`, 'a user ID is defined twice');
    groups.forEach((g, gi) =>
      g.members.forEach((m, mi) => {
        const md = domainOf(m) ?? '';
        // A GMS-only system's members are users of its MC service server, not of this file.
        if (md === domain ? role !== 'gms' && !userIds.has(m) : !partnerDomains.has(md)) {
          throw new ConfigError(`${at}.groups[${gi}].members[${mi}]`, md === domain ? `no user ${m} in this system` : `no partner system for domain ${md}`);
        }
      }),
    );
    users.forEach((u, ui) => {
      if (typeof u.remoteChange === 'object') {
        u.remoteChange.users?.forEach((t, ti) => {
          if (!userIds.has(t)) throw new ConfigError(`${at}.users[${ui}].remoteChange.users[${ti}]`, `no user ${t} in this system`);
        });
      }
    });
    if (s.sip && ['0.0.0.0', '::', '[::]'].includes(s.sip.host ?? '') && s.sip.advertisedHost === undefined) {
      throw new ConfigError(`${at}.sip.advertisedHost`, `required when sip.host is ${s.sip.host}: clients cannot reach a wildcard address`);
    }
    const sip = s.sip
      ? {
          host: s.sip.host ?? '127.0.0.1',
          port: s.sip.port,
          transports: s.sip.transports ?? (['udp', 'tcp'] as ('udp' | 'tcp')[]),
          trustedPeers: s.sip.trustedPeers ?? [],
          psi: s.sip.psi ? id(s.sip.psi, `${at}.sip.psi`) : `sip:mc-server@${domain}`,
          digestAlgorithms: s.sip.digestAlgorithms ?? (['SHA-256', 'MD5'] as ('SHA-256' | 'MD5')[]),
          maxSubscriptionsPerWatcher: s.sip.maxSubscriptionsPerWatcher ?? 1000,
          ...(s.sip.advertisedHost !== undefined ? { advertisedHost: s.sip.advertisedHost } : {}),
        }
      : undefined;
    return {
      name: s.name,
      domain,
      http: { host, port: s.http.port },
      ...(sip ? { sip } : {}),
      store: checkStore(s.store ?? `sqlite:${join(dataDir, `${s.name}.db`)}`, `${at}.store`),
      ...(s.nats ? { nats: checkNats(s.nats, `${at}.nats`) } : {}),
      secret: s.secret ? resolveSecret(s.secret, `${at}.secret`, baseDir) : generatedSecret(join(dataDir, `${s.name}.secret`)),
      ...(gms ? { gms } : {}),
      role,
      partners,
      users,
      groups,
      negotiationTimeoutMs: Math.round((cfg.negotiationTimeoutSeconds ?? 30) * 1000),
      dataDir,
      logLevel: cfg.logLevel ?? 'info',
      rateLimit: { perSecond: cfg.rateLimit?.perSecond ?? DEFAULT_RATE_LIMIT.perSecond, burst: cfg.rateLimit?.burst ?? DEFAULT_RATE_LIMIT.burst },
      maxInFlight: cfg.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT,
      maxRelaysInFlight: cfg.maxRelaysInFlight ?? DEFAULT_MAX_RELAYS_IN_FLIGHT,
      maxIntermediateNodes: cfg.maxIntermediateNodes ?? DEFAULT_MAX_INTERMEDIATE_NODES,
      eventRetentionMs: Math.round((cfg.eventRetentionHours ?? 168) * 3600_000),
      auditRetentionMs: Math.round((cfg.auditRetentionDays ?? 365) * 86_400_000),
    };
  });
}

function pointerToPath(pointer: string): string {
  return pointer
    .split('/')
    .slice(1)
    .map((p) => (/^\d+$/.test(p) ? `[${p}]` : `.${p}`))
    .join('')
    .replace(/^\./, '');
}

/** A group's display name, refused as the GMS face refuses it (parseDisplayName): one line, well-formed Unicode. */
function displayName(value: string, path: string): string {
  const why = lineTextFault(value);
  if (why !== undefined) throw new ConfigError(path, why);
  return value;
}

function checkUrl(value: string, path: string): string {
  let u: URL;
  try {
    u = new URL(value);
  } catch {
    throw new ConfigError(path, `${JSON.stringify(value)} is not a URL`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new ConfigError(path, 'must be an http(s) URL');
  return value.replace(/\/+$/, '');
}

function checkStore(value: string, path: string): string {
  if (value.startsWith('sqlite:') && value.length > 'sqlite:'.length) return value;
  if (/^postgres(ql)?:\/\//.test(value)) return value;
  throw new ConfigError(path, `${JSON.stringify(value)} is neither sqlite:PATH nor postgres://...`);
}

function checkNats(value: string, path: string): string {
  if (!/^(nats|tls):\/\/[^\s]+$/.test(value)) throw new ConfigError(path, `${JSON.stringify(value)} is not a nats:// URL`);
  return value;
}

function resolveSecret(value: string, path: string, baseDir: string): string {
  if (value.startsWith('env:')) {
    const v = process.env[value.slice(4)];
    if (!v) throw new ConfigError(path, `environment variable ${value.slice(4)} is not set`);
    return v;
  }
  if (value.startsWith('file:')) {
    try {
      return readFileSync(resolve(baseDir, value.slice(5)), 'utf8').trim();
    } catch (e) {
      throw new ConfigError(path, `cannot read secret file: ${(e as Error).message}`);
    }
  }
  return value;
}

// No secret in the repository: a system without one gets a random one, kept beside its data so tokens survive restarts.
function generatedSecret(file: string): string {
  if (existsSync(file)) return readFileSync(file, 'utf8').trim();
  mkdirSync(dirname(file), { recursive: true });
  const secret = randomBytes(32).toString('base64url');
  writeFileSync(file, secret + '\n', { mode: 0o600, flag: 'wx' });
  return secret;
}
