// The one system of the SIP e2e files: police.example in a process of its own, its SIP face on a free port trusting
// 127.0.0.1 (sipp and the UDP client send P-Asserted-Identity from there) unless the file says otherwise.
import { Muster, freePort, secret, type RawConfig } from './harness.ts';

const SIP_DOMAIN = 'police.example';

/**
 * `system`: the system's users, groups and other keys; its `sip` keys go over the defaults (port, trustedPeers).
 * `top`: configuration keys beside `systems` (rateLimit, negotiationTimeoutSeconds).
 */
export async function startPoliceWithSip(system: { sip?: Record<string, unknown> } & Record<string, unknown>, top: Omit<RawConfig, 'systems'> = {}): Promise<{ m: Muster; sipPort: number }> {
  const sipPort = await freePort();
  const m = await Muster.start({
    ...top,
    systems: [{ name: 'police', domain: SIP_DOMAIN, http: { port: await freePort() }, secret: secret(), ...system, sip: { port: sipPort, trustedPeers: ['127.0.0.1'], ...system.sip } }],
  });
  return { m, sipPort };
}
