// Unit tables for MC service IDs (src/domain/ids.ts): normalisation, refusals with a reason, equality, domain.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InvalidId, domainOf, isMcUri, parseMcUri, type McUri } from '../../src/domain/ids.ts';

const LONG_USER = 'a'.repeat(256 - 'sip:@p.example'.length);

const normalised: [name: string, raw: string, canonical: string][] = [
  ['a canonical sip URI is kept as it is', 'sip:alice@police.example', 'sip:alice@police.example'],
  ['the scheme is lower-cased', 'SIP:alice@police.example', 'sip:alice@police.example'],
  ['a mixed-case scheme is lower-cased', 'Sip:alice@police.example', 'sip:alice@police.example'],
  ['the host is lower-cased', 'sip:alice@Police.EXAMPLE', 'sip:alice@police.example'],
  ['the user part keeps its case', 'sip:Alice@police.example', 'sip:Alice@police.example'],
  ['the user part keeps its case while scheme and host fold', 'SIP:AlIcE@POLICE.Example', 'sip:AlIcE@police.example'],
  ['sips names the same user as sip', 'sips:alice@police.example', 'sip:alice@police.example'],
  ['an upper-case SIPS scheme folds to sip', 'SIPS:alice@police.example', 'sip:alice@police.example'],
  ['a host with digits and hyphens is accepted', 'sip:unit-7@ops-2.police.example', 'sip:unit-7@ops-2.police.example'],
  ['a tel URI drops its visual separators', 'tel:+1-555-(010).0', 'tel:+15550100'],
  ['an upper-case TEL scheme folds to tel', 'TEL:+15550100', 'tel:+15550100'],
  ['an ID of exactly 256 characters is accepted', `sip:${LONG_USER}@p.example`, `sip:${LONG_USER}@p.example`],
];

for (const [name, raw, canonical] of normalised) {
  void test(`parseMcUri: ${name}`, () => {
    assert.equal(parseMcUri(raw), canonical);
  });
}

const refused: [name: string, raw: unknown, why: RegExp][] = [
  ['an empty string', '', /must not be empty/],
  ['a non-string', 42, /must be a string/],
  ['undefined', undefined, /must be a string/],
  ['an ID longer than 256 characters', `sip:${LONG_USER}b@p.example`, /at most 256 characters/],
  ['a URI parameter after the host', 'sip:alice@police.example;transport=udp', /must be a sip: URI/],
  ['a parameter in the user part', 'sip:alice;x=1@police.example', /must be a sip: URI/],
  ['a header part', 'sip:alice@police.example?subject=hi', /must be a sip: URI/],
  ['a port', 'sip:alice@police.example:5060', /must be a sip: URI/],
  ['a leading space', ' sip:alice@police.example', /must be a sip: URI/],
  ['a trailing space', 'sip:alice@police.example ', /must be a sip: URI/],
  ['a space inside the user part', 'sip:al ice@police.example', /must be a sip: URI/],
  ['a trailing newline', 'sip:alice@police.example\n', /control characters/],
  ['a missing @', 'sip:alice.police.example', /must be a sip: URI/],
  ['an empty user part', 'sip:@police.example', /must be a sip: URI/],
  ['an empty host', 'sip:alice@', /must be a sip: URI/],
  ['a name-addr in angle brackets', '<sip:alice@police.example>', /must be a sip: URI/],
  ['another scheme', 'http://police.example/alice', /must be a sip: URI/],
  ['no scheme', 'alice@police.example', /must be a sip: URI/],
  ['a host starting with a dot', 'sip:alice@.police.example', /malformed domain/],
  ['a host ending with a dot', 'sip:alice@police.example.', /malformed domain/],
  ['a host with an empty label', 'sip:alice@police..example', /malformed domain/],
  ['a tel URI without digits', 'tel:+', /must be a sip: URI/],
  ['a NUL in the user part (PostgreSQL refuses NUL in text)', 'sip:pa\u0000trol@police.example', /control characters/],
  ['a control character in the user part', 'sip:pa\u0007trol@police.example', /control characters/],
  ['a DEL', 'sip:patrol\u007f@police.example', /control characters/],
  ['a right-to-left override, which shows another name than it is', 'sip:\u202elortap@police.example', /invisible formatting/],
  ['a zero-width space', 'sip:pat\u200brol@police.example', /invisible formatting/],
];

for (const [name, raw, why] of refused) {
  void test(`parseMcUri refuses ${name}, with a reason`, () => {
    assert.throws(
      () => parseMcUri(raw),
      (e: unknown) => {
        assert.ok(e instanceof InvalidId, 'throws InvalidId');
        assert.match(e.why, why);
        return true;
      },
    );
  });
}

const sameId: [a: string, b: string][] = [
  ['sip:alice@police.example', 'SIP:alice@POLICE.EXAMPLE'],
  ['sip:alice@police.example', 'sips:alice@Police.Example'],
  ['tel:+15550100', 'TEL:+1-555-0100'],
];
for (const [a, b] of sameId) {
  void test(`two spellings of one URI are one ID: ${a} = ${b}`, () => {
    assert.equal(parseMcUri(a), parseMcUri(b));
  });
}

void test('IDs differing only in the case of the user part are different IDs', () => {
  assert.notEqual(parseMcUri('sip:alice@police.example'), parseMcUri('sip:Alice@police.example'));
});

const canonicalCheck: [raw: unknown, expected: boolean][] = [
  ['sip:alice@police.example', true],
  ['tel:+15550100', true],
  ['SIP:alice@police.example', false],
  ['sip:alice@POLICE.example', false],
  ['tel:+1-555-0100', false],
  ['sip:alice', false],
  [7, false],
];
for (const [raw, expected] of canonicalCheck) {
  void test(`isMcUri(${JSON.stringify(raw)}) is ${expected}: only canonical valid IDs pass`, () => {
    assert.equal(isMcUri(raw), expected);
  });
}

const domains: [id: string, domain: string | undefined][] = [
  ['sip:alice@police.example', 'police.example'],
  ['SIP:alice@Fire.Example', 'fire.example'],
  ['tel:+15550100', undefined],
];
for (const [id, domain] of domains) {
  void test(`domainOf(${id}) is ${String(domain)}`, () => {
    assert.equal(domainOf(parseMcUri(id) satisfies McUri), domain);
  });
}
