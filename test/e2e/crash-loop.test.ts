// Issue 7: crash safety. Load, SIGKILL at random moments, restart: every acknowledged change is stored, and the GMS
// member lists agree with the server's records after recovery. `npm run soak` runs the same loop for longer.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { crashLoop } from '../support/crash-loop.ts';

void test('four rounds of load killed with SIGKILL: nothing acknowledged is lost, the GMS agrees after each restart', async () => {
  const r = await crashLoop({ rounds: 4, seed: 7 });
  assert.equal(r.kills, 4);
  assert.ok(r.acknowledged > 20, `too little load to judge: ${JSON.stringify(r)}`);
  assert.ok(r.verified > 0, JSON.stringify(r));
  assert.deepEqual(r.problems, []);
  assert.equal(r.lost, 0);
  assert.equal(r.gmsDisagreements, 0);
});
