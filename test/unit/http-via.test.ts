// Via (RFC 9110 7.6.3) as the intermediate signalling node reads it to find a relay loop: the field value parsed
// into received-protocol and received-by per intermediary, comments and empty list elements skipped, anything else
// malformed. And the configuration key that bounds the chain: maxIntermediateNodes (default, given, refused naming it).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseVia } from '../../src/faces/http/via.ts';
import { ConfigError, DEFAULT_MAX_INTERMEDIATE_NODES, resolveConfig } from '../../src/config/config.ts';

void test('Via: each intermediary as received-protocol and received-by, in order', () => {
  const table: [string | undefined, [string, string][]][] = [
    [undefined, []],
    ['', []],
    ['1.1 fire.example', [['1.1', 'fire.example']]],
    // RFC 9110 7.6.3's own example.
    ['1.0 fred, 1.1 p.example.net', [['1.0', 'fred'], ['1.1', 'p.example.net']]],
    ['HTTP/1.1 proxy.example:8080 (squid/6.6), 1.1 Fire.Example', [['HTTP/1.1', 'proxy.example:8080'], ['1.1', 'Fire.Example']]],
    ['1.1 a.example (a comment, with a comma (nested) and \\) a quoted pair),1.1 b.example', [['1.1', 'a.example'], ['1.1', 'b.example']]],
    ['1.1 [2001:db8::1]:8080', [['1.1', '[2001:db8::1]:8080']]],
    [' , 1.1 a.example ,, ', [['1.1', 'a.example']]],
    ['1.1\ta.example', [['1.1', 'a.example']]],
  ];
  for (const [value, want] of table) {
    assert.deepEqual(parseVia(value), want.map(([receivedProtocol, receivedBy]) => ({ receivedProtocol, receivedBy })), JSON.stringify(value));
  }
});

void test('Via: a malformed field value is refused as a whole', () => {
  for (const bad of ['fire.example', '1.1 a.example b.example', '1.1 a.example (unclosed', '1.1 a.example)', '1.1 a.example, fire.example', '1.1 a.example junk (c)', '1.1 (c) a.example', '1.1 a"b', '1.1 a.example\u0000']) {
    assert.equal(parseVia(bad), undefined, JSON.stringify(bad));
  }
});

const config = (top: Record<string, unknown> = {}) => resolveConfig({ ...top, dataDir: '/tmp/muster-unused', systems: [{ name: 'fire', domain: 'fire.example', http: { port: 0 }, secret: 's' }] })[0]!;

void test('config: maxIntermediateNodes defaults, is read, and a bad value is refused naming maxIntermediateNodes', () => {
  assert.equal(config().maxIntermediateNodes, DEFAULT_MAX_INTERMEDIATE_NODES);
  assert.equal(config({ maxIntermediateNodes: 2 }).maxIntermediateNodes, 2);
  for (const bad of [0, -1, 1.5, 65, 'many']) {
    assert.throws(
      () => config({ maxIntermediateNodes: bad }),
      (e: unknown) => e instanceof ConfigError && e.path === 'maxIntermediateNodes',
      JSON.stringify(bad),
    );
  }
});
