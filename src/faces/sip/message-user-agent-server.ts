// TS 24.379 §9.2.1.4 / §9.2.2.2.x over RFC 3428 (MESSAGE): an authorised user asks, by a MESSAGE to the PSI with
// an mcptt-info part (the target) and an affiliation command, that the target affiliate to and de-affiliate from
// groups, in negotiated mode. The face reads the request and hands it to the negotiated remote-change procedure.
import { randomUUID } from 'node:crypto';
import { MusterError, badInput } from '../../domain/errors.ts';
import type { McUri } from '../../domain/ids.ts';
import type { McService } from '../../domain/services.ts';
import type { ChangeRequest } from '../../domain/flows.ts';
import { decideChangeRight } from '../../domain/decisions/remote-change-right.ts';
import { remoteChangeNegotiated } from '../../procedures/remote-change-negotiated.ts';
import type { IncomingRequest } from './message.ts';
import type { Flow } from './transport.ts';
import { parseMultipart, mediaType, utf8Text } from './multipart.ts';
import { parseRequestUri } from './affiliation-document.ts';
import { AFFILIATION_COMMAND_TYPE, MC_INFO, parseAffiliationCommand, serviceOfCommandType, type AffiliationCommand } from './affiliation-command.ts';
import { senderOf } from './identity.ts';
import { SipRefusal } from './sip-refusal.ts';
import { requirePsi, type SipFaceContext } from './face-context.ts';
import type { UasAnswer } from './publish-user-agent-server.ts';
import { audited } from './sip-audit.ts';

/** What an affiliation-command MESSAGE asks: whose affiliations, for which service, which groups. */
export interface CommandMessage extends AffiliationCommand {
  service: McService;
  target: McUri;
}

export async function messageUas(ctx: SipFaceContext, req: IncomingRequest, flow: Flow): Promise<UasAnswer> {
  requirePsi(req, ctx.psi);
  const sender = await senderOf(req, flow, ctx);
  const cmd = readCommandMessage(req);

  return audited(ctx, { sender, onBehalfOf: cmd.target, action: 'sip-change-negotiated', service: cmd.service, groups: [...cmd.affiliate, ...cmd.deaffiliate] }, async () => {
    // 10.X.5.1.2 step 2 (the right of user 1) is the domain's decision; refused before anything is stored.
    const right = decideChangeRight(sender, ctx.server.profiles.get(sender), cmd.target, ctx.server.domain);
    if (!right.allowed) throw new MusterError('forbidden', `${sender} may not change the affiliations of ${cmd.target}`);

    const id = randomUUID();
    const change: ChangeRequest = { mcServiceId: sender, service: cmd.service, mode: 'negotiated', targets: [cmd.target], affiliate: cmd.affiliate, deaffiliate: cmd.deaffiliate };
    // The procedure waits for the target's answer or the timeout; the MESSAGE is answered (RFC 3428 §7: 202,
    // accepted for delivery) once the request to the target is stored, and user 1 follows the outcome by its
    // SUBSCRIBE to the target's affiliation status. A store that fails before that is the MESSAGE's answer (503).
    let stored!: () => void;
    const asked = new Promise<void>((resolve) => (stored = resolve));
    const outcome = remoteChangeNegotiated(ctx.server, change, id, stored);
    void outcome.then(
      (results) => ctx.server.log.info({ id, results }, 'negotiated affiliation change asked over SIP ended'),
      (e: unknown) => ctx.server.log.error({ err: e, id }, 'negotiated affiliation change asked over SIP failed'),
    );
    await Promise.race([asked, outcome]);
    return { status: 202, headers: [], result: { changeId: id, mode: 'negotiated', affiliate: cmd.affiliate, deaffiliate: cmd.deaffiliate } };
  });
}

/** The MESSAGE body: multipart/mixed of one mcptt-info part (the target) and one affiliation-command part. */
export function readCommandMessage(req: IncomingRequest): CommandMessage {
  const type = req.headers.get('content-type');
  if (req.body.length === 0 || !type) throw new SipRefusal(415, 'an affiliation command MESSAGE needs a body', [['Accept', `multipart/mixed, ${AFFILIATION_COMMAND_TYPE.mcptt}`]]);
  const parts = mediaType(type) === 'multipart/mixed' ? parseMultipart(req.body, type) : [{ type: mediaType(type), body: utf8Text(req.body) }];
  const commands = parts.filter((p) => serviceOfCommandType(p.type) !== undefined);
  if (commands.length !== 1) {
    throw new SipRefusal(415, commands.length === 0 ? 'no affiliation-command body part' : 'more than one affiliation-command body part', [['Accept', Object.values(AFFILIATION_COMMAND_TYPE).join(', ')]]);
  }
  const service = serviceOfCommandType(commands[0]!.type)!;
  const info = parts.find((p) => p.type === MC_INFO[service].type);
  const target = info ? parseRequestUri(info.body) : undefined;
  if (!target) throw badInput(`${MC_INFO[service].stem}-request-uri`, `the ${MC_INFO[service].type} part must name the target MC service ID`);
  return { service, target, ...parseAffiliationCommand(commands[0]!.body) };
}
