// Property tests for MC service IDs (src/domain/ids.ts, issue 7): whatever a face hands to parseMcUri, it either
// returns a canonical ID or throws InvalidId; canonical IDs parse to themselves; spellings of one ID are one ID.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { InvalidId, parseMcUri } from '../../src/domain/ids.ts';

const RUNS = { numRuns: 500 } as const;

/** parseMcUri's result, or the InvalidId it threw; anything else it throws fails the property. */
function attempt(raw: unknown): { id: string } | { invalid: string } {
  try {
    return { id: parseMcUri(raw) };
  } catch (e) {
    assert.ok(e instanceof InvalidId, `threw ${String(e)} for ${JSON.stringify(raw)}`);
    return { invalid: e.why };
  }
}

const label = fc.stringMatching(/^[a-z0-9][a-z0-9-]{0,10}$/);
const host = fc.array(label, { minLength: 1, maxLength: 4 }).map((ls) => ls.join('.'));
const userPart = fc.stringMatching(/^[A-Za-z0-9._~!$&'*+=-]{1,30}$/);
/** Mostly URIs, and near-misses of them: what a client really sends. */
const uriLike = fc.oneof(
  fc.tuple(fc.constantFrom('sip', 'sips', 'SIP', 'Sip', 'sIpS', 'tel', 'TEL', 'mailto', ''), fc.string({ maxLength: 40 }), fc.constantFrom(':', '@', ';', '?', ' ', '')).map(([s, rest, sep]) => `${s}:${rest}${sep}`),
  fc.tuple(userPart, host).map(([u, h]) => `sip:${u}@${h}`),
  fc.stringMatching(/^tel:\+?[0-9][0-9.()-]{0,20}$/),
);
const anyInput = fc.oneof(fc.string({ maxLength: 300 }), fc.string({ unit: 'grapheme', maxLength: 80 }), uriLike, fc.anything(), fc.string({ minLength: 250, maxLength: 270 }));

/** Changes the case of each letter of `s` by the bits of `mask`. */
const recase = (s: string, mask: readonly boolean[]): string => [...s].map((c, i) => (mask[i % mask.length] ? c.toUpperCase() : c.toLowerCase())).join('');

void test('parseMcUri never throws anything but InvalidId, and what it returns parses to itself', () => {
  fc.assert(
    fc.property(anyInput, (raw) => {
      const first = attempt(raw);
      if ('id' in first) assert.deepEqual(attempt(first.id), first, `parse(parse(${JSON.stringify(raw)})) differs`);
    }),
    RUNS,
  );
});

void test('parseMcUri: a valid ID is canonical (lower-case scheme and host, at most 256 characters)', () => {
  fc.assert(
    fc.property(uriLike, (raw) => {
      const r = attempt(raw);
      if (!('id' in r)) return;
      assert.match(r.id, /^(sip:[^@]+@[a-z0-9.-]+|tel:\+?[0-9]+)$/);
      assert.ok(r.id.length <= 256);
    }),
    RUNS,
  );
});

void test('parseMcUri: case variants of the scheme and the host give one ID; the user part keeps its case', () => {
  fc.assert(
    fc.property(fc.constantFrom('sip', 'sips'), userPart, host, fc.array(fc.boolean(), { minLength: 1, maxLength: 8 }), fc.array(fc.boolean(), { minLength: 1, maxLength: 8 }), (scheme, user, h, m1, m2) => {
      const canonical = parseMcUri(`sip:${user}@${h}`);
      assert.equal(parseMcUri(`${recase(scheme, m1)}:${user}@${recase(h, m2)}`), canonical);
      assert.equal(canonical, `sip:${user}@${h}`);
    }),
    RUNS,
  );
});

void test('parseMcUri: two user parts that differ in case are two IDs (RFC 3261 19.1.4)', () => {
  fc.assert(
    fc.property(userPart.filter((u) => u.toLowerCase() !== u.toUpperCase()), host, (user, h) => {
      assert.notEqual(parseMcUri(`sip:${user.toLowerCase()}@${h}`), parseMcUri(`sip:${user.toUpperCase()}@${h}`));
    }),
    RUNS,
  );
});
