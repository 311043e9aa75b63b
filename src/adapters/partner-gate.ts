// Authenticates partner MC service servers: each partner signs with the secret shared with this system only.
import { decodeJwt, jwtVerify, SignJWT } from 'jose';
import { MusterError } from '../domain/errors.ts';
import type { PartnerConfig } from '../config/config.ts';

const audienceOf = (domain: string): string => `muster:${domain}`;

export class PartnerGate {
  private readonly byDomain: Map<string, PartnerConfig>;
  constructor(
    private readonly ownDomain: string,
    partners: PartnerConfig[],
  ) {
    this.byDomain = new Map(partners.map((p) => [p.domain, p]));
  }

  /** The domain of the partner system that signed this request, or a 401. */
  async verify(authorization: string | undefined): Promise<string> {
    const token = /^Bearer\s+(\S+)$/.exec(authorization ?? '')?.[1];
    if (!token) throw new MusterError('unauthenticated', 'partner request without a server credential');
    let issuer: string | undefined;
    try {
      issuer = decodeJwt(token).iss;
    } catch {
      throw new MusterError('unauthenticated', 'partner credential is not a JWT');
    }
    const partner = issuer?.startsWith('muster:') ? this.byDomain.get(issuer.slice(7)) : undefined;
    if (!partner) throw new MusterError('unauthenticated', `${issuer ?? 'unknown issuer'} is not a configured partner system`);
    try {
      const { payload } = await jwtVerify(token, new TextEncoder().encode(partner.secret), { issuer: audienceOf(partner.domain), audience: audienceOf(this.ownDomain), algorithms: ['HS256'] });
      if (payload['role'] !== 'server') throw new Error('not a server credential');
    } catch {
      throw new MusterError('unauthenticated', `credential of partner ${partner.domain} not valid`);
    }
    return partner.domain;
  }

  /** A short-lived server credential for requests to `partner`. */
  static async sign(ownDomain: string, partner: PartnerConfig): Promise<string> {
    return new SignJWT({ role: 'server' })
      .setProtectedHeader({ alg: 'HS256' })
      .setIssuer(audienceOf(ownDomain))
      .setSubject(ownDomain)
      .setAudience(audienceOf(partner.domain))
      .setIssuedAt()
      .setExpirationTime('120s')
      .sign(new TextEncoder().encode(partner.secret));
  }
}
