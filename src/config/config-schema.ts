// The configuration file of CONTRACT.md ("Configuration file"), as a schema: unknown keys are refused.
import { Type, type Static } from 'typebox';
import { MC_SERVICES } from '../domain/services.ts';

const Str = Type.String({ minLength: 1 });
const Service = Type.Enum(MC_SERVICES);
const Port = Type.Integer({ minimum: 0, maximum: 65535 });
const strict = { additionalProperties: false } as const;

/** A secret is given inline, as `env:NAME`, or as `file:PATH`; without one, a random one is kept under the data folder. */
const Secret = Str;

const User = Type.Object(
  {
    id: Str,
    services: Type.Array(Service),
    n2: Type.Union([Type.Integer({ minimum: 0, maximum: 10000 }), Type.Object({ mcptt: Type.Optional(Type.Integer({ minimum: 0 })), mcvideo: Type.Optional(Type.Integer({ minimum: 0 })), mcdata: Type.Optional(Type.Integer({ minimum: 0 })) }, strict)]),
    groups: Type.Array(Str),
    remoteChange: Type.Optional(Type.Union([Type.Boolean(), Type.Object({ users: Type.Optional(Type.Array(Str)), groups: Type.Optional(Type.Array(Str)) }, strict)])),
  },
  strict,
);

const Group = Type.Object(
  {
    id: Str,
    displayName: Type.Optional(Type.String()),
    services: Type.Array(Service, { minItems: 1 }),
    enabled: Type.Optional(Type.Boolean()),
    members: Type.Array(Str),
    deaffiliationForbidden: Type.Optional(Type.Boolean()),
  },
  strict,
);

const Partner = Type.Object(
  {
    domain: Str,
    url: Str,
    secret: Secret,
    /**
     * Intermediate signalling node: requests for this partner go to this URL instead (10.X.3.2 step 3). When it is
     * another partner's `url`, that partner relays them and is sent a hop credential (Proxy-Authorization) too.
     */
    via: Type.Optional(Str),
    timeoutMs: Type.Optional(Type.Integer({ minimum: 1, maximum: 600000 })),
  },
  strict,
);

const System = Type.Object(
  {
    name: Type.String({ minLength: 1, pattern: '^[a-z0-9][a-z0-9-]*$' }),
    domain: Str,
    http: Type.Object({ host: Type.Optional(Str), port: Port }, strict),
    sip: Type.Optional(
      Type.Object(
        {
          host: Type.Optional(Str),
          port: Port,
          transports: Type.Optional(Type.Array(Type.Union([Type.Literal('udp'), Type.Literal('tcp')]))),
          trustedPeers: Type.Optional(Type.Array(Str)),
          psi: Type.Optional(Str),
          /** Digest algorithms offered to senders outside trustedPeers, most preferred first (RFC 8760 §2.4). */
          digestAlgorithms: Type.Optional(Type.Array(Type.Union([Type.Literal('SHA-256'), Type.Literal('MD5')]), { minItems: 1, maxItems: 2, uniqueItems: true })),
          /** The host name or address clients reach this server at (Contact, Via); needed when `host` is a wildcard. */
          advertisedHost: Type.Optional(Str),
          /** Live subscriptions one watcher may hold at one instance (a new one beyond it: 403). */
          maxSubscriptionsPerWatcher: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000 })),
        },
        strict,
      ),
    ),
    store: Type.Optional(Str),
    /** The event fabric between several instances of this system, e.g. nats://127.0.0.1:4222. */
    nats: Type.Optional(Str),
    secret: Type.Optional(Secret),
    /**
     * The group management server is elsewhere (issue 7): another Muster system's /gms/v1, reached with a server
     * credential that system issued (`muster token --server NAME`). Absent: the GMS runs here, on the same store.
     */
    gms: Type.Optional(Type.Object({ url: Str, credential: Secret, timeoutMs: Type.Optional(Type.Integer({ minimum: 1, maximum: 60000 })) }, strict)),
    /** `gms`: this system is only a group management server; its groups' members are users of MC service servers elsewhere. */
    role: Type.Optional(Type.Enum(['mc-and-gms', 'gms'] as const)),
    partners: Type.Optional(Type.Array(Partner)),
    users: Type.Optional(Type.Array(User)),
    groups: Type.Optional(Type.Array(Group)),
  },
  strict,
);

export const ConfigSchema = Type.Object(
  {
    negotiationTimeoutSeconds: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 86400 })),
    partnerTimeoutMs: Type.Optional(Type.Integer({ minimum: 1, maximum: 600000 })),
    /** How long client events are kept (change requests still waiting for their target are kept regardless). */
    eventRetentionHours: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 87600 })),
    /** How long audit entries are kept (an operator's record of who changed what). */
    auditRetentionDays: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 36500 })),
    dataDir: Type.Optional(Str),
    logLevel: Type.Optional(Type.Enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const)),
    /** Token bucket per credential subject, per server instance (issue 7): `perSecond` refill, up to `burst` at once. */
    rateLimit: Type.Optional(Type.Object({ perSecond: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 1_000_000 })), burst: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000 })) }, strict)),
    /** Requests one server instance works on at once; more are refused with 503 at once instead of queueing. */
    maxInFlight: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000 })),
    /** As an intermediate signalling node: relayed requests one server instance has under way to one next hop (more: 503). */
    maxRelaysInFlight: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000 })),
    /** As an intermediate signalling node: a request whose Via already lists this many intermediaries is refused (508). */
    maxIntermediateNodes: Type.Optional(Type.Integer({ minimum: 1, maximum: 64 })),
    systems: Type.Array(System, { minItems: 1 }),
  },
  strict,
);

export type ConfigFile = Static<typeof ConfigSchema>;
export type SystemConfigFile = Static<typeof System>;
