// From a schema-checked body to a flow with normalised IDs: the rules every face shares (no face re-checks IDs).
import { InvalidId, lineTextFault, parseMcUri, type McUri } from './ids.ts';
import { badInput } from './errors.ts';
import type { McService } from './services.ts';
import type { AffiliationRequest, ChangeMode, ChangeRequest } from './flows.ts';

export function parseId(raw: unknown, field: string): McUri {
  try {
    return parseMcUri(raw);
  } catch (e) {
    if (e instanceof InvalidId) throw badInput(field, e.why);
    throw e;
  }
}

/** A group's display name (group-policy.ts) as sent, or bad input naming `field`: one line, well-formed Unicode. */
export function parseDisplayName(raw: string, field: string): string {
  const why = lineTextFault(raw);
  if (why !== undefined) throw badInput(field, why);
  return raw;
}

/** Normalises a list of IDs; two spellings of one ID are one ID, so a repeat is refused rather than counted twice. */
export function parseIdList(raw: readonly unknown[], field: string): McUri[] {
  const seen = new Map<McUri, number>();
  return raw.map((item, i) => {
    const id = parseId(item, `${field}[${i}]`);
    const first = seen.get(id);
    if (first !== undefined) throw badInput(`${field}[${i}]`, `repeats ${field}[${first}] (${id})`);
    seen.set(id, i);
    return id;
  });
}

export function parseAffiliationRequest(body: { mcServiceId: string; service: McService; groupIds: string[] }): AffiliationRequest {
  if (body.groupIds.length === 0) throw badInput('groupIds', 'must name at least one group');
  return { mcServiceId: parseId(body.mcServiceId, 'mcServiceId'), service: body.service, groupIds: parseIdList(body.groupIds, 'groupIds') };
}

export function parseChangeRequest(body: {
  mcServiceId: string;
  service: McService;
  mode: ChangeMode;
  targets: string[];
  affiliate?: string[];
  deaffiliate?: string[];
}): ChangeRequest {
  const affiliate = parseIdList(body.affiliate ?? [], 'affiliate');
  const deaffiliate = parseIdList(body.deaffiliate ?? [], 'deaffiliate');
  if (affiliate.length + deaffiliate.length === 0) throw badInput('affiliate', 'a change names at least one group to affiliate or de-affiliate');
  const both = affiliate.find((g) => deaffiliate.includes(g));
  if (both) throw badInput('deaffiliate', `${both} is also in affiliate`);
  return {
    mcServiceId: parseId(body.mcServiceId, 'mcServiceId'),
    service: body.service,
    mode: body.mode,
    targets: parseIdList(body.targets, 'targets'),
    affiliate,
    deaffiliate,
  };
}
