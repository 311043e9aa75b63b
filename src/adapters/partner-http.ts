// Partner MC service servers over HTTP (/federation/v1), through an intermediate node when configured.
// Every failure (down, slow past the timeout, garbled answer) becomes partner-unreachable for that partner's groups.
import type { GroupStatus } from '../domain/flows.ts';
import { REFUSAL_REASONS } from '../domain/reasons.ts';
import type { PartnerConfig } from '../config/config.ts';
import type { PartnerRequest, PartnerServers } from '../ports/partner.ts';
import { PartnerGate } from './partner-gate.ts';
import type { Logger } from 'pino';

export class HttpPartnerServers implements PartnerServers {
  private readonly byDomain: Map<string, PartnerConfig>;
  private readonly tokens = new Map<string, { token: string; until: number }>();

  constructor(
    private readonly ownDomain: string,
    partners: PartnerConfig[],
    private readonly log: Logger,
  ) {
    this.byDomain = new Map(partners.map((p) => [p.domain, p]));
  }

  domains(): string[] {
    return [...this.byDomain.keys()];
  }

  affiliate(req: PartnerRequest): Promise<GroupStatus[]> {
    return this.send('affiliations', req, 'affiliated');
  }

  deaffiliate(req: PartnerRequest): Promise<GroupStatus[]> {
    return this.send('deaffiliations', req, 'deaffiliated');
  }

  async health(): Promise<Record<string, 'up' | 'down'>> {
    const out: Record<string, 'up' | 'down'> = {};
    await Promise.all(
      [...this.byDomain.values()].map(async (p) => {
        try {
          const res = await fetch(`${p.nextHop}/healthz`, { signal: AbortSignal.timeout(Math.min(p.timeoutMs, 2000)) });
          await res.body?.cancel();
          out[p.domain] = res.status < 500 || res.status === 503 ? 'up' : 'down';
        } catch {
          out[p.domain] = 'down';
        }
      }),
    );
    return out;
  }

  private async send(path: string, req: PartnerRequest, success: 'affiliated' | 'deaffiliated'): Promise<GroupStatus[]> {
    const unreachable = (): GroupStatus[] => req.groupIds.map((groupId) => ({ groupId, status: 'rejected', reason: 'partner-unreachable' }));
    const partner = this.byDomain.get(req.domain);
    if (!partner) return unreachable();
    try {
      const res = await fetch(`${partner.nextHop}/federation/v1/${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${await this.token(partner)}` },
        body: JSON.stringify({ mcServiceId: req.mcServiceId, service: req.service, groupIds: req.groupIds }),
        signal: AbortSignal.timeout(partner.timeoutMs),
      });
      const body = (await res.json()) as unknown;
      if (res.status !== 200) {
        this.log.warn({ partner: partner.domain, status: res.status, body }, 'partner refused the request');
        return unreachable();
      }
      return this.readStatus(body, req, success) ?? unreachable();
    } catch (e) {
      this.log.warn({ partner: partner.domain, err: (e as Error).message }, 'partner unreachable');
      return unreachable();
    }
  }

  /** Accepts only an answer with one well-formed status for each group asked, nothing else. */
  private readStatus(body: unknown, req: PartnerRequest, success: string): GroupStatus[] | undefined {
    const list = (body as { status?: unknown } | null)?.status;
    if (!Array.isArray(list) || list.length !== req.groupIds.length) return undefined;
    const out: GroupStatus[] = [];
    for (const [i, groupId] of req.groupIds.entries()) {
      const s = list[i] as { groupId?: unknown; status?: unknown; reason?: unknown } | null;
      if (!s || s.groupId !== groupId) return undefined;
      if (s.status === success) out.push({ groupId, status: success as 'affiliated' });
      else if (s.status === 'rejected' && (REFUSAL_REASONS as readonly unknown[]).includes(s.reason)) out.push({ groupId, status: 'rejected', reason: s.reason as GroupStatus & { status: 'rejected' } extends { reason: infer R } ? R : never });
      else return undefined;
    }
    return out;
  }

  private async token(partner: PartnerConfig): Promise<string> {
    const cached = this.tokens.get(partner.domain);
    if (cached && cached.until > Date.now()) return cached.token;
    const token = await PartnerGate.sign(this.ownDomain, partner);
    this.tokens.set(partner.domain, { token, until: Date.now() + 60_000 });
    return token;
  }
}
