// The MC services that share the affiliation procedures of TS 23.280 clause 10.X (clause 10.X.1).

export const MC_SERVICES = ['mcptt', 'mcvideo', 'mcdata'] as const;
export type McService = (typeof MC_SERVICES)[number];

export function isMcService(value: unknown): value is McService {
  return typeof value === 'string' && (MC_SERVICES as readonly string[]).includes(value);
}
