// The client SDK (DESIGN.md "client/"): the MC service client's side of CONTRACT.md `/mc/v1`, and the operator's
// `/admin/v1` and `/gms/v1`. Used by the CLI, the tests and the benchmarks; talks HTTP with Node's own fetch.
import type { AffiliationRequest, AffiliationResponse, ChangeRequest, ChangeResponse } from '../domain/flows.ts';
import type { McUri } from '../domain/ids.ts';
import type { McService } from '../domain/services.ts';
import type { UserProfile } from '../domain/profile.ts';
import type { GroupPolicy } from '../domain/group-policy.ts';
import { requestJson, baseUrlOf, isRecord, MusterClientError, type HttpMethod, type RequestOptions, type TransportOptions } from './transport.ts';
import { eventStream, reconnectingEventStream, type McEvent, type ReconnectingEventStreamOptions } from './event-stream.ts';

export { MusterClientError, type RequestOptions } from './transport.ts';
export { isRetryable, type McEvent, type ReconnectInfo, type ReconnectingEventStreamOptions } from './event-stream.ts';

export interface MusterClientOptions {
  /** Base URL of the user's home MC system, e.g. http://127.0.0.1:8080. */
  server: string;
  /** Bearer credential (`muster token --user ID`). */
  token: string;
  /** Per request; default 15 s. A change request waits at least CHANGE_TIMEOUT_MS (see change()). */
  timeoutMs?: number;
}

const DEFAULT_TIMEOUT_MS = 15_000;
/** A negotiated change is answered only once every target answered or timed out (negotiationTimeoutSeconds, 30 s by default). */
export const CHANGE_TIMEOUT_MS = 120_000;

/** What the SDK sends and receives: the flows' fields with IDs as plain strings (the server normalises them). */
export type Wire<T> = T extends McUri ? string : T extends (infer U)[] ? Wire<U>[] : T extends object ? { [K in keyof T]: Wire<T[K]> } : T;

/** Affiliation and de-affiliation request body (CONTRACT.md `POST /mc/v1/affiliations`). */
export type AffiliationRequestBody = Wire<AffiliationRequest>;
/** Affiliation change request body; `affiliate` and `deaffiliate` may be left out (not both). */
export type ChangeRequestBody = Omit<Wire<ChangeRequest>, 'affiliate' | 'deaffiliate'> & Partial<Pick<Wire<ChangeRequest>, 'affiliate' | 'deaffiliate'>>;

/** `GET /mc/v1/users/{id}/affiliations`: the user's affiliations, one entry per group and service. */
export interface UserAffiliations {
  mcServiceId: string;
  affiliations: {
    groupId: string;
    service: McService;
    /** 'affiliated', or 'reserved' while a partner system is asked. */
    state: string;
    /** The group as its home sees it now: 'enabled', 'disabled', 'deleted', 'partner', 'unroutable'. */
    group?: string;
    since?: string;
  }[];
}

/** `GET /mc/v1/groups/{id}/members`: the affiliated members of a group. */
export interface GroupMembers {
  groupId: string;
  members: { mcServiceId: string; service: McService; since?: string }[];
}

/** Data of an `affiliation-change` event (CONTRACT.md `GET /mc/v1/events`). */
export interface AffiliationChangeEventData {
  id: string;
  mode: 'mandatory' | 'negotiated';
  actor: string;
  target: string;
  service: McService;
  affiliate: string[];
  deaffiliate: string[];
  /** Negotiated mode: when the server stops waiting for the answer (ISO 8601). */
  deadline?: string;
  /** Mandatory mode: what the change did. */
  status?: Wire<AffiliationResponse['status']>;
}

/** Data of an `affiliation-status` event. */
export interface AffiliationStatusEventData {
  service: McService;
  status: Wire<AffiliationResponse['status']>;
}

class HttpClient {
  protected readonly transport: TransportOptions;
  constructor(opts: MusterClientOptions) {
    baseUrlOf(opts.server); // refuse a bad URL at construction, not at the first request
    this.transport = { server: opts.server, token: opts.token, timeoutMs: opts.timeoutMs ?? DEFAULT_TIMEOUT_MS };
  }
  get server(): string {
    return this.transport.server;
  }
  protected async call<T>(method: HttpMethod, path: string, body?: unknown, opts?: RequestOptions, answers?: readonly number[]): Promise<T> {
    // The server is trusted to answer in the contract's shape (its OpenAPI document); the SDK does not re-validate it.
    return (await requestJson(this.transport, method, path, body, opts, answers)) as T;
  }
}

const seg = encodeURIComponent;
const query = (service?: McService): string => (service ? `?service=${seg(service)}` : '');

/** The MC service client (CONTRACT.md "Client -> MC service server"). */
export class MusterClient extends HttpClient {
  /** Affiliation request (TS 23.280 10.X.3.1): one status per requested group, in request order. */
  affiliate(request: AffiliationRequestBody, opts?: RequestOptions): Promise<AffiliationResponse> {
    return this.call('POST', '/mc/v1/affiliations', request, opts);
  }

  /** De-affiliation request (10.X.3.3): statuses `deaffiliated` or `rejected` with a reason. */
  deaffiliate(request: AffiliationRequestBody, opts?: RequestOptions): Promise<AffiliationResponse> {
    return this.call('POST', '/mc/v1/deaffiliations', request, opts);
  }

  /** Affiliation change request, mandatory (10.X.5.1.1) or negotiated (10.X.5.1.2): an outcome per target. */
  change(request: ChangeRequestBody, opts?: RequestOptions): Promise<ChangeResponse> {
    const timeoutMs = opts?.timeoutMs ?? Math.max(this.transport.timeoutMs, CHANGE_TIMEOUT_MS);
    return this.call('POST', '/mc/v1/affiliation-changes', request, { ...opts, timeoutMs });
  }

  /** Client 2's affiliation change response: acknowledgement (mandatory) or decision (negotiated). */
  answerChange(id: string, accept: boolean, opts?: RequestOptions): Promise<unknown> {
    return this.call('POST', `/mc/v1/affiliation-changes/${seg(id)}/answer`, { accept }, opts);
  }

  /** The user's affiliations (self, or a user the caller may change). */
  affiliationsOf(userId: string, service?: McService, opts?: RequestOptions): Promise<UserAffiliations> {
    return this.call('GET', `/mc/v1/users/${seg(userId)}/affiliations${query(service)}`, undefined, opts);
  }

  /** The affiliated members of a group. */
  membersOf(groupId: string, service?: McService, opts?: RequestOptions): Promise<GroupMembers> {
    return this.call('GET', `/mc/v1/groups/${seg(groupId)}/members${query(service)}`, undefined, opts);
  }

  /** One connection to the caller's event stream; ends when `signal` aborts or the server closes it. */
  events(opts: { lastEventId?: string; signal?: AbortSignal } = {}): AsyncGenerator<McEvent, void, undefined> {
    return eventStream(this.transport, opts);
  }

  /** The event stream kept open across dropped connections (Last-Event-ID, bounded backoff); ends when `signal` aborts. */
  eventsWithReconnect(opts: ReconnectingEventStreamOptions = {}): AsyncGenerator<McEvent, void, undefined> {
    return reconnectingEventStream(this.transport, opts);
  }
}

/** A page of the SIP face's live state: about one user, at most `limit`, after the previous page's `next`. */
export interface SipListQuery {
  user?: string;
  limit?: number;
  after?: string;
}

export interface SipSubscriptionEntry {
  id: string;
  instance: string;
  watcher: string;
  userId: string;
  service: McService;
  transport: 'udp' | 'tcp';
  remote: string;
  callId: string;
  expiresAt: string;
}

export interface SipPublicationEntry {
  userId: string;
  service: McService;
  etag: string;
  expires: number;
  expiresAt: string | null;
  pId: string | null;
  tupleId: string | null;
}

function sipQuery(q: SipListQuery): string {
  const params = new URLSearchParams();
  if (q.user !== undefined) params.set('user', q.user);
  if (q.limit !== undefined) params.set('limit', String(q.limit));
  if (q.after !== undefined) params.set('after', q.after);
  const s = params.toString();
  return s ? `?${s}` : '';
}

/** A user profile as the operator writes it (CONTRACT.md "Operator"). */
export type UserProfileDocument = Wire<UserProfile>;
/** A group document as the GMS takes it; the GMS keeps the revision. */
export type GroupDocument = Wire<Omit<GroupPolicy, 'revision'>> & { revision?: number };

/**
 * A change stored at a system of several instances but not yet confirmed by every live one (202): the instances
 * that may still serve the old profile or policy, and the server's sentence saying so. Absent: in force everywhere.
 */
export interface NotInForce {
  notConfirmed?: string[];
  warning?: string;
}

/** A deletion's answer: nothing (204, in force everywhere), or 202 with what is not yet in force. */
export type DeletedAnswer = ({ id: string; deleted: true } & NotInForce) | undefined;

/** `GET /healthz` (README "Operating it"): the system's dependencies; `status` 'degraded' when one that counts is down. */
export interface Health {
  status: 'ok' | 'degraded';
  system: string;
  /** `<kind>:up|down`, e.g. `sqlite:up`. */
  store: string;
  gms: string;
  /** `up`, `none` (one instance), `reconnecting`, `behind`. */
  fabric: string;
  /** With several instances: the other live ones, and those that have not confirmed a change this one announced. */
  instances?: string[];
  instancesBehind?: string[];
  /** Per partner domain: `up`, `down` or `loop-detected`. */
  partners: Record<string, string>;
}

/** `GET /admin/v1/audit`'s filters (docs/audit.md); instants as ISO 8601 with a zone, or epoch milliseconds. */
export interface AuditQuery {
  subject?: string;
  onBehalfOf?: string;
  since?: string;
  until?: string;
  limit?: number;
  /** The previous page's `next`. */
  after?: number;
}

/** One audit entry (docs/audit.md). */
export interface AuditEntry {
  id: number;
  at: string;
  subject: string;
  role: string;
  onBehalfOf: string | null;
  action: string;
  service: string | null;
  groups: string[];
  httpStatus: number;
  errorCode: string | null;
  result: unknown;
}

function auditQuery(q: AuditQuery): string {
  const params = new URLSearchParams();
  for (const key of ['subject', 'onBehalfOf', 'since', 'until', 'limit', 'after'] as const) if (q[key] !== undefined) params.set(key, String(q[key]));
  const s = params.toString();
  return s ? `?${s}` : '';
}

/** The operator's client: user profiles (`/admin/v1`) and group documents (`/gms/v1`); needs an operator credential. */
export class OperatorClient extends HttpClient {
  /** The system's health; a 503 is an answer too (it says what is down), not an error. */
  async health(opts?: RequestOptions): Promise<Health> {
    const answer = await this.call<unknown>('GET', '/healthz', undefined, opts, [503]);
    if (isRecord(answer) && typeof answer['status'] === 'string') return answer as unknown as Health;
    const error = isRecord(answer) && isRecord(answer['error']) ? answer['error'] : {};
    throw new MusterClientError(503, typeof error['code'] === 'string' ? error['code'] : 'bad-response', typeof error['message'] === 'string' ? error['message'] : 'GET /healthz answered without a health report');
  }
  /** The audit log, oldest first, a page at a time (`next`: pass as `after`). */
  audit(q: AuditQuery = {}, opts?: RequestOptions): Promise<{ entries: AuditEntry[]; next: number | null }> {
    return this.call('GET', `/admin/v1/audit${auditQuery(q)}`, undefined, opts);
  }
  /** Live SIP subscriptions of every instance (README "Operating it"), a page at a time. */
  sipSubscriptions(q: SipListQuery = {}, opts?: RequestOptions): Promise<{ subscriptions: SipSubscriptionEntry[]; next: string | null }> {
    return this.call('GET', `/admin/v1/sip/subscriptions${sipQuery(q)}`, undefined, opts);
  }
  /** Live SIP publications, a page at a time. */
  sipPublications(q: SipListQuery = {}, opts?: RequestOptions): Promise<{ publications: SipPublicationEntry[]; next: string | null }> {
    return this.call('GET', `/admin/v1/sip/publications${sipQuery(q)}`, undefined, opts);
  }
  putUser(profile: UserProfileDocument, opts?: RequestOptions): Promise<UserProfileDocument & NotInForce> {
    return this.call('PUT', `/admin/v1/users/${seg(profile.id)}`, profile, opts);
  }
  getUser(id: string, opts?: RequestOptions): Promise<UserProfileDocument> {
    return this.call('GET', `/admin/v1/users/${seg(id)}`, undefined, opts);
  }
  deleteUser(id: string, opts?: RequestOptions): Promise<DeletedAnswer> {
    return this.call('DELETE', `/admin/v1/users/${seg(id)}`, undefined, opts);
  }
  putGroup(doc: GroupDocument, opts?: RequestOptions): Promise<GroupDocument & NotInForce> {
    return this.call('PUT', `/gms/v1/groups/${seg(doc.id)}`, doc, opts);
  }
  deleteGroup(id: string, opts?: RequestOptions): Promise<DeletedAnswer> {
    return this.call('DELETE', `/gms/v1/groups/${seg(id)}`, undefined, opts);
  }
  getGroup(id: string, opts?: RequestOptions): Promise<GroupDocument> {
    return this.call('GET', `/gms/v1/groups/${seg(id)}`, undefined, opts);
  }
  /** Partner re-synchronisation now, with every partner or the one named; waits for the reports. */
  resyncPartners(partner?: string, opts?: RequestOptions): Promise<{ resyncs: PartnerResyncReport[] }> {
    return this.call('POST', '/admin/v1/partner-resyncs', partner === undefined ? {} : { partner }, opts);
  }
}

/** One affiliation record in a re-synchronisation report. */
export interface ResyncRecord {
  mcServiceId: string;
  service: McService;
  groupId: string;
}

/** What one partner re-synchronisation did (README "Partner re-synchronisation"). */
export interface PartnerResyncReport {
  partner: string;
  reason: string;
  complete: boolean;
  error?: string;
  /** `loop-detected`: the route to the partner loops through intermediate nodes (a configuration error). */
  fault?: 'loop-detected';
  pages: number;
  removed: ResyncRecord[];
  spared: ResyncRecord[];
  reasked: (ResyncRecord & { outcome: 'agreed' | 'dropped' | 'retry-later'; reason?: string })[];
  skipped: (ResyncRecord & { why: string })[];
  graceMs: number;
}
