// Authenticates partner MC service servers: each partner signs with the secret shared with this system only.
import { webcrypto } from 'node:crypto';
import { decodeJwt, jwtVerify, SignJWT } from 'jose';
import { MusterError } from '../domain/errors.ts';
import { bearerCredential } from '../domain/bearer.ts';
import type { PartnerConfig } from '../config/config.ts';

const audienceOf = (domain: string): string => `muster:${domain}`;

/** Verified partner credentials kept at most this many; a partner reuses its credential for a minute (partner-http.ts). */
const VERIFIED_CACHE = 1000;

export class PartnerGate {
  private readonly byDomain: Map<string, PartnerConfig>;
  /** Each partner's secret imported once: jose would import a raw secret on every request (16 % of a partner's time in bench 2). */
  private readonly keys = new Map<string, Promise<webcrypto.CryptoKey>>();
  /** Credentials already verified, until they expire: a partner's requests then cost a lookup. */
  private readonly verified = new Map<string, { domain: string; expiresAt: number }>();
  constructor(
    private readonly ownDomain: string,
    partners: PartnerConfig[],
    private readonly now: () => number = Date.now,
  ) {
    this.byDomain = new Map(partners.map((p) => [p.domain, p]));
  }

  private keyOf(partner: PartnerConfig): Promise<webcrypto.CryptoKey> {
    let key = this.keys.get(partner.domain);
    if (!key) {
      key = webcrypto.subtle.importKey('raw', new TextEncoder().encode(partner.secret), { name: 'HMAC', hash: 'SHA-256' }, false, ['verify']);
      this.keys.set(partner.domain, key);
    }
    return key;
  }

  /** The domain of the partner system that signed this request, or a 401. */
  async verify(authorization: string | undefined): Promise<string> {
    const token = bearerCredential(authorization);
    if (!token) throw new MusterError('unauthenticated', 'partner request without a server credential');
    const known = this.verified.get(token);
    if (known && known.expiresAt > this.now()) return known.domain;
    let issuer: string | undefined;
    try {
      issuer = decodeJwt(token).iss;
    } catch {
      throw new MusterError('unauthenticated', 'partner credential is not a JWT');
    }
    const partner = issuer?.startsWith('muster:') ? this.byDomain.get(issuer.slice(7)) : undefined;
    if (!partner) throw new MusterError('unauthenticated', `${issuer ?? 'unknown issuer'} is not a configured partner system`);
    try {
      const { payload } = await jwtVerify(token, await this.keyOf(partner), { issuer: audienceOf(partner.domain), audience: audienceOf(this.ownDomain), algorithms: ['HS256'], currentDate: new Date(this.now()) });
      if (payload['role'] !== 'server' || typeof payload.exp !== 'number') throw new Error('not a server credential');
      if (this.verified.size >= VERIFIED_CACHE) this.verified.delete(this.verified.keys().next().value!);
      this.verified.set(token, { domain: partner.domain, expiresAt: payload.exp * 1000 });
    } catch {
      throw new MusterError('unauthenticated', `credential of partner ${partner.domain} not valid`);
    }
    return partner.domain;
  }

  /** A short-lived server credential for requests to `partner` (ServerCredentials keeps one for reuse). */
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

/**
 * The server credentials this system sends to its partners, each reused for a minute (it is valid for two): the
 * end-to-end one for a group host, and the hop credential for an intermediate Muster node, which is the same.
 */
export class ServerCredentials {
  private readonly tokens = new Map<string, { token: string; until: number }>();
  constructor(
    private readonly ownDomain: string,
    private readonly now: () => number = Date.now,
  ) {}

  async of(partner: PartnerConfig): Promise<string> {
    const cached = this.tokens.get(partner.domain);
    if (cached && cached.until > this.now()) return cached.token;
    const token = await PartnerGate.sign(this.ownDomain, partner);
    this.tokens.set(partner.domain, { token, until: this.now() + 60_000 });
    return token;
  }
}
