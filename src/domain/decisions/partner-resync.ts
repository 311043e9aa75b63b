// Partner re-synchronisation (STAGE3.md "Server to server", TETRA's database recovery between switches): the primary
// server and a group host compare what each holds of the primary's users in the host's groups, and agree again.
import type { McUri } from '../ids.ts';
import type { McService } from '../services.ts';
import { notAnsweredYet, type GroupStatus } from '../flows.ts';
import type { HeldState } from './group-home.ts';
import type { RefusalReason } from '../reasons.ts';

export interface ResyncKey {
  userId: McUri;
  service: McService;
  groupId: McUri;
}

export const resyncKeyOf = (k: ResyncKey): string => `${k.userId} ${k.service} ${k.groupId}`;

export interface HostComparison {
  /** Held here, not at the primary, and older than the grace: de-affiliate at the group host. */
  remove: ResyncKey[];
  /** Held here, not at the primary, but changed within the grace: a request may still be on its way to the primary. */
  spared: ResyncKey[];
  /** Held by the primary, not here: reported, so the primary asks again. */
  missing: ResyncKey[];
}

/**
 * The group host's rule, for one page's key range. `hostHolds` are its records of the caller's users in its own
 * groups within that range; `primaryHolds` what the primary listed for it (reserved rows included: a request in
 * flight). A record changed less than `graceMs` before `now` is spared, because the primary's list may have been
 * read before the affiliation request that made it (both times are the host's clock).
 */
export function compareAsGroupHost(f: { primaryHolds: readonly ResyncKey[]; hostHolds: readonly (ResyncKey & { updatedAt: number })[]; now: number; graceMs: number }): HostComparison {
  const atPrimary = new Set(f.primaryHolds.map(resyncKeyOf));
  const here = new Set(f.hostHolds.map(resyncKeyOf));
  const key = (k: ResyncKey): ResyncKey => ({ userId: k.userId, service: k.service, groupId: k.groupId });
  const extra = f.hostHolds.filter((h) => !atPrimary.has(resyncKeyOf(h)));
  return {
    remove: extra.filter((h) => h.updatedAt <= f.now - f.graceMs).map(key),
    spared: extra.filter((h) => h.updatedAt > f.now - f.graceMs).map(key),
    missing: f.primaryHolds.filter((p) => !here.has(resyncKeyOf(p))).map(key),
  };
}

export type ReaskVerdict =
  /** Still affiliated at the primary, nothing on its way: ask the group host again. */
  | { verdict: 'reask' }
  /** A request for it is on its way (reserved, or a request or undo in flight): its answer decides, not the re-sync. */
  | { verdict: 'skip'; why: 'in-flight' }
  /** The primary no longer holds it (the user left meanwhile): nothing to ask. */
  | { verdict: 'skip'; why: 'gone' };

/** The primary's rule for a record the host reported missing, given what the primary holds now. */
export function decideReask(f: { heldNow: HeldState | undefined; inFlight: boolean }): ReaskVerdict {
  if (f.heldNow === undefined) return { verdict: 'skip', why: 'gone' };
  if (f.heldNow === 'reserved' || f.inFlight) return { verdict: 'skip', why: 'in-flight' };
  return { verdict: 'reask' };
}

export type ReaskOutcome =
  /** The host affiliated the user again: both agree. */
  | { outcome: 'agreed' }
  /** The host did not answer (or its GMS did not): the record stays, a later re-sync asks again. */
  | { outcome: 'retry-later' }
  /** The host refuses now: the primary drops its record and tells the user. */
  | { outcome: 'drop'; reason: RefusalReason };

/** What the primary does with the group host's answer to a re-asked affiliation. */
export function decideReaskOutcome(status: GroupStatus): ReaskOutcome {
  if (status.status === 'affiliated') return { outcome: 'agreed' };
  if (status.status === 'rejected' && !notAnsweredYet(status)) return { outcome: 'drop', reason: status.reason };
  return { outcome: 'retry-later' };
}

/** Key order as the stores sort (UTF-8 bytes, which is code point order): user, then service, then group. */
export function compareResyncKeys(a: ResyncKey, b: ResyncKey): number {
  return compareCodePoints(a.userId, b.userId) || compareCodePoints(a.service, b.service) || compareCodePoints(a.groupId, b.groupId);
}

function compareCodePoints(a: string, b: string): number {
  const x = [...a];
  const y = [...b];
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const d = x[i]!.codePointAt(0)! - y[i]!.codePointAt(0)!;
    if (d !== 0) return d;
  }
  return x.length - y.length;
}

/** Keys gathered per user and service, in first-seen order: one request per user and service, as the flows carry them. */
export function byUserAndService(keys: readonly ResyncKey[]): { userId: McUri; service: McService; groupIds: McUri[] }[] {
  const out = new Map<string, { userId: McUri; service: McService; groupIds: McUri[] }>();
  for (const k of keys) {
    const id = `${k.userId} ${k.service}`;
    const entry = out.get(id) ?? { userId: k.userId, service: k.service, groupIds: [] };
    entry.groupIds.push(k.groupId);
    out.set(id, entry);
  }
  return [...out.values()];
}
