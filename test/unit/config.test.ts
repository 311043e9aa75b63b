// Unit tables for the configuration loader (src/config/config.ts; CONTRACT.md "Configuration file").
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, loadConfig, resolveConfig, type SystemConfig } from '../../src/config/config.ts';

const tmp = mkdtempSync(join(tmpdir(), 'muster-config-test-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
let dirs = 0;
const freshDir = (): string => mkdtempSync(join(tmp, `d${dirs++}-`));

/** The example of CONTRACT.md, verbatim apart from the data folder (kept under a temp dir). */
const CONTRACT_EXAMPLE = (dataDir: string): string => `
negotiationTimeoutSeconds: 30          # negotiated-mode answer time
dataDir: ${dataDir}
systems:
  - name: police
    domain: police.example             # users and groups of this domain are at home here
    http: { host: 127.0.0.1, port: 8080 }
    sip: { host: 127.0.0.1, port: 5060, transports: [udp, tcp], trustedPeers: [127.0.0.1], psi: sip:mc-server@police.example }  # optional; psi defaults to sip:mc-server@<domain>
    store: sqlite:./data/police.db     # or postgres://127.0.0.1:5432/test
    secret: change-me                  # signs this system's development credentials
    partners:
      - { domain: fire.example, url: http://127.0.0.1:8081, secret: shared-with-fire }
    users:
      - id: sip:alice@police.example
        services: [mcptt, mcdata]
        n2: 3                          # max simultaneous affiliations per service
        groups: [sip:patrol@police.example, sip:fire-ops@fire.example]  # user subscription
      - id: sip:dispatch@police.example
        services: [mcptt]
        n2: 10
        groups: [sip:patrol@police.example]
        remoteChange: true             # or { users: [...], groups: [...] }
    groups:
      - id: sip:patrol@police.example
        services: [mcptt]
        enabled: true
        members: [sip:alice@police.example, sip:dispatch@police.example]
        deaffiliationForbidden: false
`;

/** A small valid configuration as data, for the cases that change one thing in it. */
interface UserEntry {
  id: string;
  services: string[];
  n2: number | Record<string, number>;
  groups: string[];
  [key: string]: unknown;
}
interface GroupEntry {
  id: string;
  services: string[];
  members: string[];
  [key: string]: unknown;
}
interface SystemEntry {
  name: string;
  domain: string;
  http: Record<string, unknown>;
  secret?: string;
  partners?: Record<string, unknown>[];
  users: UserEntry[];
  groups: GroupEntry[];
  [key: string]: unknown;
}
interface ConfigEntry {
  dataDir: string;
  systems: SystemEntry[];
  [key: string]: unknown;
}
const base = (): ConfigEntry => ({
  dataDir: freshDir(),
  systems: [
    {
      name: 'police',
      domain: 'police.example',
      http: { port: 0 },
      secret: 'inline-secret',
      partners: [{ domain: 'fire.example', url: 'http://127.0.0.1:8081', secret: 'shared' }],
      users: [{ id: 'sip:alice@police.example', services: ['mcptt'], n2: 3, groups: ['sip:patrol@police.example', 'sip:fire-ops@fire.example'] }],
      groups: [{ id: 'sip:patrol@police.example', services: ['mcptt'], members: ['sip:alice@police.example'] }],
    },
  ],
});
const sys = (c: ConfigEntry): SystemEntry => c.systems[0]!;

function only(systems: SystemConfig[]): SystemConfig {
  assert.equal(systems.length, 1);
  return systems[0]!;
}

function assertConfigError(fn: () => unknown, path: string, why?: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof ConfigError, 'throws ConfigError');
    assert.equal(e.path, path);
    if (why) assert.match(e.message, why);
    return true;
  });
}

void test('the example of CONTRACT.md loads from YAML with its values', () => {
  const dataDir = freshDir();
  const file = join(dataDir, 'muster.yaml');
  writeFileSync(file, CONTRACT_EXAMPLE(dataDir));
  const s = only(loadConfig(file));
  assert.equal(s.name, 'police');
  assert.equal(s.domain, 'police.example');
  assert.deepEqual(s.http, { host: '127.0.0.1', port: 8080 });
  // digestAlgorithms defaults to RFC 8760's preference, SHA-256 first; a watcher holds at most 1,000 subscriptions.
  assert.deepEqual(s.sip, { host: '127.0.0.1', port: 5060, transports: ['udp', 'tcp'], trustedPeers: ['127.0.0.1'], psi: 'sip:mc-server@police.example', digestAlgorithms: ['SHA-256', 'MD5'], maxSubscriptionsPerWatcher: 1000 });
  assert.equal(s.store, 'sqlite:./data/police.db');
  assert.equal(s.secret, 'change-me');
  assert.equal(s.negotiationTimeoutMs, 30000);
  assert.equal(s.dataDir, dataDir);
  assert.deepEqual(s.partners, [{ domain: 'fire.example', url: 'http://127.0.0.1:8081', nextHop: 'http://127.0.0.1:8081', secret: 'shared-with-fire', timeoutMs: 5000 }]);
  assert.deepEqual(s.users, [
    { id: 'sip:alice@police.example', services: ['mcptt', 'mcdata'], n2: 3, groups: ['sip:patrol@police.example', 'sip:fire-ops@fire.example'], remoteChange: false },
    { id: 'sip:dispatch@police.example', services: ['mcptt'], n2: 10, groups: ['sip:patrol@police.example'], remoteChange: true },
  ]);
  assert.deepEqual(s.groups, [
    {
      id: 'sip:patrol@police.example',
      services: ['mcptt'],
      enabled: true,
      members: ['sip:alice@police.example', 'sip:dispatch@police.example'],
      deaffiliationForbidden: false,
      revision: 1,
    },
  ]);
});

void test('the same configuration loads from JSON', () => {
  const c = base();
  const file = join(c.dataDir, 'muster.json');
  writeFileSync(file, JSON.stringify(c));
  const s = only(loadConfig(file));
  assert.equal(s.domain, 'police.example');
  assert.equal(s.users[0]?.id, 'sip:alice@police.example');
});

void test('IDs in the configuration are normalised', () => {
  const c = base();
  sys(c).domain = 'Police.Example';
  sys(c).users[0]!.id = 'SIP:alice@POLICE.example';
  sys(c).groups[0]!.members = ['sip:alice@Police.Example'];
  const s = only(resolveConfig(c));
  assert.equal(s.domain, 'police.example');
  assert.equal(s.users[0]?.id, 'sip:alice@police.example');
  assert.deepEqual(s.groups[0]?.members, ['sip:alice@police.example']);
});

const refusals: [name: string, change: (c: ConfigEntry) => void, path: string, why?: RegExp][] = [
  ['an unknown key in a user', (c) => (sys(c).users[0]!.colour = 'red'), 'systems[0].users[0].colour'],
  ['an unknown key at the top', (c) => (c.colour = 'red'), 'colour'],
  ['an unknown key in http', (c) => (sys(c).http.colour = 'red'), 'systems[0].http.colour'],
  ['an unknown key in a group', (c) => (sys(c).groups[0]!.owner = 'x'), 'systems[0].groups[0].owner'],
  ['an unknown key in a partner', (c) => (sys(c).partners![0]!.colour = 'red'), 'systems[0].partners[0].colour'],
  ['a user group of an unknown partner domain', (c) => sys(c).users[0]!.groups.push('sip:medic@ambulance.example'), 'systems[0].users[0].groups[2]', /no partner system for domain ambulance\.example/],
  ['a user group of the own domain that is not defined', (c) => (sys(c).users[0]!.groups = ['sip:ghost@police.example']), 'systems[0].users[0].groups[0]', /no group sip:ghost@police\.example/],
  ['a group member that is not a user of the system', (c) => sys(c).groups[0]!.members.push('sip:mallory@police.example'), 'systems[0].groups[0].members[1]', /no user sip:mallory@police\.example/],
  ['a group member of an unknown partner domain', (c) => sys(c).groups[0]!.members.push('sip:eve@ambulance.example'), 'systems[0].groups[0].members[1]', /no partner system for domain ambulance\.example/],
  ['an invalid user ID', (c) => (sys(c).users[0]!.id = 'alice'), 'systems[0].users[0].id', /must be a sip: URI/],
  ['a user of another domain', (c) => (sys(c).users[0]!.id = 'sip:alice@fire.example'), 'systems[0].users[0].id', /not of this system's domain/],
  ['a group of another domain', (c) => (sys(c).groups[0]!.id = 'sip:patrol@fire.example'), 'systems[0].groups[0].id', /not of this system's domain/],
  ['a remote-change user that is not a user', (c) => (sys(c).users[0]!.remoteChange = { users: ['sip:bob@police.example'] }), 'systems[0].users[0].remoteChange.users[0]', /no user/],
  ['an unknown service', (c) => (sys(c).users[0]!.services = ['mcfax']), 'systems[0].users[0].services[0]'],
  ['a partner that is the own domain', (c) => (sys(c).partners![0]!.domain = 'police.example'), 'systems[0].partners[0].domain', /not its own partner/],
  ['a partner URL that is not http(s)', (c) => (sys(c).partners![0]!.url = 'ftp://fire.example'), 'systems[0].partners[0].url', /http\(s\)/],
  ['a group display name with a control character', (c) => (sys(c).groups[0]!.displayName = 'Patrol\u0000'), 'systems[0].groups[0].displayName', /control character/],
  ['a group display name with a lone surrogate', (c) => (sys(c).groups[0]!.displayName = 'Patrol\ud800'), 'systems[0].groups[0].displayName', /lone surrogate/],
];
for (const [name, change, path, why] of refusals) {
  void test(`config refuses ${name}, naming ${path}`, () => {
    const c = base();
    change(c);
    assertConfigError(() => resolveConfig(c), path, why);
  });
}

void test('a group member of a configured partner domain is accepted', () => {
  const c = base();
  sys(c).groups[0]!.members.push('sip:dave@fire.example');
  assert.deepEqual(only(resolveConfig(c)).groups[0]?.members, ['sip:alice@police.example', 'sip:dave@fire.example']);
});

void test('an env: secret is read from the environment', () => {
  const name = `MUSTER_TEST_SECRET_${process.pid}`;
  process.env[name] = 'from-the-environment';
  try {
    const c = base();
    sys(c).secret = `env:${name}`;
    sys(c).partners![0]!.secret = `env:${name}`;
    const s = only(resolveConfig(c));
    assert.equal(s.secret, 'from-the-environment');
    assert.equal(s.partners[0]?.secret, 'from-the-environment');
  } finally {
    delete process.env[name];
  }
});

void test('an env: secret whose variable is not set is refused with its path', () => {
  const c = base();
  sys(c).partners![0]!.secret = `env:MUSTER_TEST_UNSET_${process.pid}`;
  assertConfigError(() => resolveConfig(c), 'systems[0].partners[0].secret', /is not set/);
});

void test('a file: secret is read relative to the base folder, trimmed', () => {
  const dir = freshDir();
  writeFileSync(join(dir, 'police.key'), 'from-a-file\n');
  const c = base();
  sys(c).secret = 'file:police.key';
  assert.equal(only(resolveConfig(c, dir)).secret, 'from-a-file');
});

void test('a file: secret in a configuration file is read relative to that file', () => {
  const dir = freshDir();
  writeFileSync(join(dir, 'fire.key'), 'shared-from-file\n');
  const c = base();
  sys(c).partners![0]!.secret = 'file:fire.key';
  const file = join(dir, 'muster.json');
  writeFileSync(file, JSON.stringify(c));
  assert.equal(only(loadConfig(file)).partners[0]?.secret, 'shared-from-file');
});

void test('a file: secret that cannot be read is refused with its path', () => {
  const c = base();
  sys(c).secret = 'file:missing.key';
  assertConfigError(() => resolveConfig(c, freshDir()), 'systems[0].secret', /cannot read secret file/);
});

void test('without a secret, a generated one is kept in dataDir and reused on the next load', () => {
  const c = base();
  delete sys(c).secret;
  const first = only(resolveConfig(c)).secret;
  const file = join(c.dataDir, 'police.secret');
  assert.ok(existsSync(file), 'the secret is kept in dataDir');
  assert.equal(readFileSync(file, 'utf8').trim(), first);
  assert.ok(first.length >= 32, 'the generated secret is long');
  assert.equal(only(resolveConfig(c)).secret, first);
});

void test('generated secrets differ between data folders', () => {
  const a = base();
  const b = base();
  delete sys(a).secret;
  delete sys(b).secret;
  assert.notEqual(only(resolveConfig(a)).secret, only(resolveConfig(b)).secret);
});

void test('gms: a GMS elsewhere, its credential from env:, default timeout; own groups of users are not checked here', () => {
  const name = `MUSTER_TEST_GMS_${process.pid}`;
  process.env[name] = 'server-credential';
  try {
    const c = base();
    sys(c).groups = [];
    sys(c).gms = { url: 'http://127.0.0.1:9090/', credential: `env:${name}` };
    const s = only(resolveConfig(c));
    assert.deepEqual(s.gms, { url: 'http://127.0.0.1:9090', credential: 'server-credential', timeoutMs: 2000 });
    assert.equal(s.role, 'mc-and-gms');
    assert.deepEqual(s.users[0]?.groups, ['sip:patrol@police.example', 'sip:fire-ops@fire.example']);
  } finally {
    delete process.env[name];
  }
});

void test('gms: groups beside it, a bad URL, an unset credential and role gms with it are refused with their paths', () => {
  const withGroups = base();
  sys(withGroups).gms = { url: 'http://127.0.0.1:9090', credential: 'c' };
  assertConfigError(() => resolveConfig(withGroups), 'systems[0].groups', /live in the GMS/);
  const badUrl = base();
  sys(badUrl).groups = [];
  sys(badUrl).gms = { url: 'ftp://x', credential: 'c' };
  assertConfigError(() => resolveConfig(badUrl), 'systems[0].gms.url', /http/);
  const unset = base();
  sys(unset).groups = [];
  sys(unset).gms = { url: 'http://127.0.0.1:9090', credential: `env:MUSTER_TEST_UNSET_${process.pid}` };
  assertConfigError(() => resolveConfig(unset), 'systems[0].gms.credential', /is not set/);
  const both = base();
  sys(both).groups = [];
  sys(both).users = [];
  sys(both).role = 'gms';
  sys(both).gms = { url: 'http://127.0.0.1:9090', credential: 'c' };
  assertConfigError(() => resolveConfig(both), 'systems[0].gms', /its own GMS/);
});

void test('role gms: group members need not be users of the file, and users are refused', () => {
  const c = base();
  sys(c).role = 'gms';
  sys(c).users = [];
  sys(c).groups[0]!.members.push('sip:bob@police.example');
  const s = only(resolveConfig(c));
  assert.equal(s.role, 'gms');
  assert.deepEqual(s.groups[0]?.members, ['sip:alice@police.example', 'sip:bob@police.example']);
  const withUsers = base();
  sys(withUsers).role = 'gms';
  assertConfigError(() => resolveConfig(withUsers), 'systems[0].users', /no users/);
});

void test('the examples load: demo.yaml is what `npm start` serves (HTTP 8080, SIP 5060 per CONTRACT.md), three-systems.yaml three partners', async () => {
  const { parse } = await import('yaml');
  const load = (file: string): SystemConfig[] => {
    // The generated secrets go to a temp folder, not to ./data of the checkout.
    const raw = parse(readFileSync(join(import.meta.dirname, '../../examples', file), 'utf8')) as Record<string, unknown>;
    return resolveConfig({ ...raw, dataDir: freshDir() }, freshDir());
  };
  const [demo] = load('demo.yaml');
  assert.equal(demo?.http.port, 8080);
  assert.equal(demo?.sip?.port, 5060);
  assert.deepEqual(demo?.sip?.trustedPeers, [], 'no peer trusted in the demo: clients authenticate');
  // Its partner secrets come from the environment, as the README's walk-through exports them.
  const names = ['MUSTER_POLICE_FIRE_SECRET', 'MUSTER_POLICE_AMBULANCE_SECRET', 'MUSTER_FIRE_AMBULANCE_SECRET'];
  names.forEach((n) => (process.env[n] = `test-${n}`));
  try {
    assert.deepEqual(load('three-systems.yaml').map((s) => s.partners.length), [2, 2, 2]);
  } finally {
    names.forEach((n) => delete process.env[n]);
  }
});

void test('sip.advertisedHost: kept when given; required when sip.host is a wildcard, with its path', () => {
  const sys = (sip: Record<string, unknown>) => ({ dataDir: freshDir(), systems: [{ name: 'police', domain: 'police.example', http: { port: 8080 }, secret: 'x', sip: { port: 5060, ...sip } }] });
  assert.equal(resolveConfig(sys({ host: '0.0.0.0', advertisedHost: 'mc.police.example' }))[0]?.sip?.advertisedHost, 'mc.police.example');
  assert.throws(() => resolveConfig(sys({ host: '0.0.0.0' })), (e: unknown) => e instanceof ConfigError && e.message.includes('systems[0].sip.advertisedHost'));
});
