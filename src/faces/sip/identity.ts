// Who sent a request (RFC 3325 §9.1 P-Asserted-Identity within a trust domain; RFC 8898 Bearer credentials
// otherwise): the asserted identity counts only from a trusted peer address; anyone else presents the same
// credential as over HTTP.
import { MusterError } from '../../domain/errors.ts';
import { InvalidId, parseMcUri, type McUri } from '../../domain/ids.ts';
import type { CredentialVerifier } from '../http/credentials.ts';
import type { IncomingRequest } from './message.ts';
import type { Flow } from './transport.ts';
import { addressOfRecord, assertedUri } from './name-addr.ts';

export async function senderOf(req: IncomingRequest, flow: Flow, trustedPeers: readonly string[], verifier: CredentialVerifier): Promise<McUri> {
  const trusted = trustedPeers.includes(flow.remoteAddress) || trustedPeers.includes(flow.remoteAddress.replace(/^::ffff:/, ''));
  if (trusted && req.headers.has('p-asserted-identity')) {
    const uri = assertedUri(req.headers.all('p-asserted-identity'));
    try {
      return parseMcUri(uri ? addressOfRecord(uri) : undefined);
    } catch (e) {
      if (e instanceof InvalidId) throw new MusterError('forbidden', `P-Asserted-Identity ${e.why}`);
      throw e;
    }
  }
  // Outside the trust domain a P-Asserted-Identity means nothing (RFC 3325 §5); the credential decides.
  const cred = await verifier.verify(req.headers.get('authorization'));
  if (cred.role !== 'user') throw new MusterError('forbidden', `a ${cred.role} credential does not speak for an MC service user`);
  return cred.subject as McUri;
}
