// RFC 6665 §4.2.2 (notifier NOTIFY behaviour) and TS 24.379 §9.2.2.2.5: the NOTIFY carrying a user's (or a group's)
// affiliation status, built here (pure); the transaction layer sends it.
import type { AffiliationStatusDocument, GroupAffiliationDocument } from './pidf-render.ts';
import { renderStatusDocument } from './pidf-render.ts';
import { PIDF_TYPE } from './affiliation-document.ts';
import { newBranch, type HeaderList, type OutgoingRequest } from './outgoing-message.ts';
import type { Subscription } from './subscription-state.ts';

export interface LocalAddress {
  transport: 'UDP' | 'TCP';
  address: string;
  port: number;
}

export function buildNotify(
  sub: Subscription,
  psi: string,
  local: LocalAddress,
  state: { active: true; expiresIn: number } | { active: false; reason: 'timeout' | 'deactivated' | 'noresource' },
  doc: AffiliationStatusDocument | GroupAffiliationDocument,
): { request: OutgoingRequest; branch: string } {
  const branch = newBranch();
  const request: OutgoingRequest = {
    kind: 'request',
    method: 'NOTIFY',
    uri: sub.remoteTarget,
    headers: [
      ...inDialogHeaders(sub, psi, local, 'NOTIFY', branch),
      ['Event', sub.eventId ? `presence;id=${sub.eventId}` : 'presence'],
      ['Subscription-State', state.active ? `active;expires=${Math.max(0, state.expiresIn)}` : `terminated;reason=${state.reason}`],
    ],
    body: { contentType: PIDF_TYPE, bytes: Buffer.from(renderStatusDocument(doc), 'utf8') },
  };
  return { request, branch };
}

/** RFC 3261 §12.2.1.1: a request of ours inside the subscription's dialog; each takes the dialog's next local CSeq. */
export function inDialogHeaders(sub: Subscription, psi: string, local: LocalAddress, method: string, branch: string): HeaderList {
  const host = hostPart(local.address);
  sub.localCSeq += 1;
  return [
    ['Via', `SIP/2.0/${local.transport} ${host}:${local.port};branch=${branch};rport`],
    ['Max-Forwards', '70'],
    ['From', `<${psi}>;tag=${sub.localTag}`],
    ['To', sub.remoteFrom],
    ['Call-ID', sub.callId],
    ['CSeq', `${sub.localCSeq} ${method}`],
    ['Contact', contactOf(psi, local)],
  ];
}

/** RFC 3261 §12.1.1: where the client sends its requests in the dialog: this server's own address, as advertised. */
export function contactOf(psi: string, local: LocalAddress): string {
  const host = hostPart(local.address);
  return `<sip:${psi.replace(/^sips?:/, '').split('@')[0]}@${host}:${local.port};transport=${local.transport.toLowerCase()}>`;
}

/** An address as the host part of a SIP URI or Via: an IPv6 one in brackets (RFC 3261 §25.1). */
function hostPart(address: string): string {
  return address.includes(':') ? `[${address}]` : address;
}
