// Partner groups over SIP (TS 24.379 §9.2.2.2.3-5 over TS 23.280 10.X.3.2): police runs the SIP face, fire and
// ambulance are its partners (three processes on loopback, test/support/partners.ts). sipp affiliates alice to an own
// group and two fire groups; police's next hop to fire holds each answer back for a second, so the NOTIFY sent while
// fire decides shows the fire groups `affiliating`; after the 200 (with a Warning for the group fire refused) the
// NOTIFY shows each group's final status, and fire's own records show alice affiliated.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { freePort } from '../support/harness.ts';
import { sipp } from '../support/sipp.ts';
import { Relay, alice, assertAgreement, engine, patrol, primaryRecords, startThreeSystems, type ThreeSystems } from '../support/partners.ts';

const PSI = 'sip:mc-server@police.example';
/** Fire's answers are held back this long: long enough to see `affiliating`, far inside the partner timeout. */
const FIRE_DELAY_MS = 1000;
let sys: ThreeSystems;
let toFire: Relay;
let sipPort: number;

before(async () => {
  sipPort = await freePort();
  sys = await startThreeSystems({
    policeSip: { port: sipPort, trustedPeers: ['127.0.0.1'] },
    routes: async (urls) => {
      toFire = await Relay.start(urls.fire);
      return { toFire: { via: toFire.url, timeoutMs: 8000 } };
    },
  });
  toFire.mode = { kind: 'slow', ms: FIRE_DELAY_MS };
});

after(async () => {
  await sys?.stop();
  await toFire?.stop();
});

void test('own and partner groups in one PUBLISH: affiliating while fire decides, then affiliated; fire refuses hazmat per group', async () => {
  const run = await sipp('affiliate-partner-groups.xml', { port: sipPort }, { psi: PSI, user: alice });
  assert.equal(run.code, 0, run.output);
  // The order on the wire: interim NOTIFY (fire still deciding), the 200 with the Warning, the final NOTIFY.
  const received = run.messages.split(/^-{10,}.*$/m).filter((b) => b.includes('message received'));
  const at = (test: (b: string) => boolean): number => received.findIndex(test);
  const interim = at((b) => b.includes('NOTIFY sip:') && b.includes('status="affiliating"'));
  const answer = at((b) => /SIP\/2\.0 200 OK/.test(b) && b.includes('CSeq: 2 PUBLISH'));
  const final = at((b) => b.includes('NOTIFY sip:') && b.includes('<mcpttPI10:p-id>pub-partners</mcpttPI10:p-id>'));
  assert.ok(interim >= 0 && interim < answer && answer < final, `affiliating NOTIFY (${interim}), then the 200 (${answer}), then the final NOTIFY (${final})`);
  // Police holds patrol and engine, nothing reserved; fire's GMS lists alice in engine (and not hazmat).
  assert.deepEqual(await primaryRecords(sys, alice), { [patrol]: 'affiliated', [engine]: 'affiliated' });
  assert.deepEqual(await assertAgreement(sys, alice, [engine]), [engine]);
});
