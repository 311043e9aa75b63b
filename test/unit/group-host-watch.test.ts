// A partner's user joining or leaving a group hosted here (10.X.3.2 steps 4-7, 10.X.4.3) reaches this system's
// watchers of that group (the SIP face's group subscriptions listen on the notifier's group channel): on a real
// system (SQLite), through the procedures the federation routes call.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { McUri } from '../../src/domain/ids.ts';
import type { ClientEvent } from '../../src/ports/store.ts';
import { withSystem } from '../support/in-process.ts';
import { affiliateAsGroupHost, deaffiliateAsGroupHost } from '../../src/procedures/affiliate-as-group-host.ts';

const engine = 'sip:engine@fire.example' as McUri;
const rescue = 'sip:rescue@fire.example' as McUri;
const alice = 'sip:alice@police.example' as McUri;

void test("a partner's user joining and leaving a hosted group: the group's watchers here hear both, other groups' nothing", async () => {
  const fire = {
    name: 'fire',
    domain: 'fire.example',
    http: { port: 0 },
    secret: 'host-watch-test-secret',
    // Nobody listens there: the start-up re-synchronisation waits for it in the background.
    partners: [{ domain: 'police.example', url: 'http://127.0.0.1:9', secret: 'shared-with-police' }],
    groups: [
      { id: engine, services: ['mcptt'], members: [alice] },
      { id: rescue, services: ['mcptt'], members: [alice] },
    ],
  };
  await withSystem(fire, async (system) => {
    const heard: { group: McUri; event: ClientEvent }[] = [];
    const offs = [engine, rescue].map((group) => system.server.notifier.subscribeGroup(group, (event) => heard.push({ group, event })));
    const joined = await affiliateAsGroupHost(system.server, { mcServiceId: alice, service: 'mcptt', groupIds: [engine] });
    assert.deepEqual(joined.status, [{ groupId: engine, status: 'affiliated' }]);
    const left = await deaffiliateAsGroupHost(system.server, { mcServiceId: alice, service: 'mcptt', groupIds: [engine] });
    assert.deepEqual(left.status, [{ groupId: engine, status: 'deaffiliated' }]);
    offs.forEach((off) => off());
    assert.deepEqual(
      heard.map(({ group, event }) => [group, event.userId, event.type, event.data]),
      [
        [engine, alice, 'affiliation-status', { service: 'mcptt', status: [{ groupId: engine, status: 'affiliated' }] }],
        [engine, alice, 'affiliation-status', { service: 'mcptt', status: [{ groupId: engine, status: 'deaffiliated' }] }],
      ],
    );
  });
});
