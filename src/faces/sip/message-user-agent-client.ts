// TS 24.379 §9.2.2.2.x / §9.2.1.5 over RFC 3428: the MESSAGE the server sends the target's client with the
// affiliation command (negotiated mode: what the user is asked to approve; mandatory mode: what was done).
// Sent inside the target's subscription dialog (RFC 3428 §4 allows MESSAGE in a dialog another request made), so it
// takes the flow and route of the NOTIFYs: Muster has no REGISTER. Built here (pure); change-delivery.ts sends it.
import type { McUri } from '../../domain/ids.ts';
import type { McService } from '../../domain/services.ts';
import { newBranch, type OutgoingRequest } from './outgoing-message.ts';
import { renderMultipart } from './multipart.ts';
import { AFFILIATION_COMMAND_TYPE, MC_INFO, renderAffiliationCommand, renderMcInfo } from './affiliation-command.ts';
import { inDialogHeaders, type LocalAddress } from './notify-user-agent-client.ts';
import type { Subscription } from './subscription-state.ts';

/** A change request as its target is told of it (the `affiliation-change` client event, or the stored record). */
export interface ChangeNotice {
  id: string;
  mode: 'mandatory' | 'negotiated';
  actor: McUri;
  target: McUri;
  service: McService;
  affiliate: McUri[];
  deaffiliate: McUri[];
}

/** RFC 3261 §20.36: Subject says, for people and logs, which of the two a command is; the body is the same. */
export const CHANGE_SUBJECT: Readonly<Record<ChangeNotice['mode'], string>> = {
  negotiated: 'affiliation change request (negotiated)',
  mandatory: 'affiliation change done (mandatory)',
};

export function buildChangeMessage(sub: Subscription, psi: string, local: LocalAddress, change: ChangeNotice): { request: OutgoingRequest; branch: string } {
  const branch = newBranch();
  const request: OutgoingRequest = {
    kind: 'request',
    method: 'MESSAGE',
    uri: sub.remoteTarget,
    headers: [...inDialogHeaders(sub, psi, local, 'MESSAGE', branch), ['Subject', CHANGE_SUBJECT[change.mode]]],
    body: renderMultipart([
      { type: MC_INFO[change.service].type, body: renderMcInfo(change.service, change.target, change.actor) },
      { type: AFFILIATION_COMMAND_TYPE[change.service], body: renderAffiliationCommand(change) },
    ]),
  };
  return { request, branch };
}
