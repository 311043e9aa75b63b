// TS 24.379 §4.2 / TS 24.229: the MC service of a request, from its ICSI in P-Preferred-Service,
// P-Asserted-Service (RFC 6050) or the +g.3gpp.icsi-ref feature tag of Accept-Contact (RFC 3841); MCPTT by default.
import type { McService } from '../../domain/services.ts';
import type { IncomingRequest } from './message.ts';

export const ICSI: Readonly<Record<McService, string>> = {
  mcptt: 'urn:urn-7:3gpp-service.ims.icsi.mcptt',
  mcvideo: 'urn:urn-7:3gpp-service.ims.icsi.mcvideo',
  mcdata: 'urn:urn-7:3gpp-service.ims.icsi.mcdata',
};

const ICSI_PATTERN = /urn:urn-7:3gpp-service\.ims\.icsi\.(mcptt|mcvideo|mcdata)\b/i;

export function serviceOf(req: IncomingRequest): McService {
  for (const header of ['p-asserted-service', 'p-preferred-service', 'accept-contact']) {
    for (const value of req.headers.all(header)) {
      let decoded = value;
      try {
        decoded = decodeURIComponent(value);
      } catch {
        /* a stray % in a header: read it as written */
      }
      const m = ICSI_PATTERN.exec(decoded);
      if (m) return m[1]!.toLowerCase() as McService;
    }
  }
  return 'mcptt';
}
