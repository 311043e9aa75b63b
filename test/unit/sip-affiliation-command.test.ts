// The affiliation command document (TS 24.379 Annex F.4): parse, render, round trip, hostile XML refused with a
// 400 naming the field, and the MESSAGE body read from multipart/mixed with its mcptt-info part.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AFFILIATION_COMMAND_NS, AFFILIATION_COMMAND_TYPE, parseAffiliationCommand, renderAffiliationCommand, renderMcInfo, serviceOfCommandType } from '../../src/faces/sip/affiliation-command.ts';
import { readCommandMessage } from '../../src/faces/sip/message-user-agent-server.ts';
import { parseRequestUri } from '../../src/faces/sip/affiliation-document.ts';
import { renderMultipart } from '../../src/faces/sip/multipart.ts';
import { parseMessage } from '../../src/faces/sip/parser.ts';
import { MusterError } from '../../src/domain/errors.ts';
import { SipRefusal } from '../../src/faces/sip/sip-refusal.ts';
import type { IncomingRequest } from '../../src/faces/sip/message.ts';
import type { McUri } from '../../src/domain/ids.ts';

const PATROL = 'sip:patrol@police.example' as McUri;
const NORTH = 'sip:north@police.example' as McUri;
const SOUTH = 'sip:south@police.example' as McUri;
const cmd = (inner: string): string => `<?xml version="1.0" encoding="UTF-8"?><command-list xmlns="${AFFILIATION_COMMAND_NS}">${inner}</command-list>`;

void test('reads the groups to affiliate and to de-affiliate, normalising each URI', () => {
  const doc = parseAffiliationCommand(cmd(`<affiliate><group>${PATROL}</group><group> SIP:north@POLICE.example </group></affiliate><de-affiliate><group>${SOUTH}</group></de-affiliate>`));
  assert.deepEqual(doc, { affiliate: [PATROL, NORTH], deaffiliate: [SOUTH] });
});

void test('a prefixed namespace and unknown extension elements are read as the schema allows', () => {
  const text = `<ac:command-list xmlns:ac="${AFFILIATION_COMMAND_NS}" xmlns:x="urn:example:ext"><ac:de-affiliate><ac:group>${PATROL}</ac:group></ac:de-affiliate><x:note>ignored</x:note></ac:command-list>`;
  assert.deepEqual(parseAffiliationCommand(text), { affiliate: [], deaffiliate: [PATROL] });
});

void test('render then parse gives the same command back', () => {
  const command = { affiliate: [SOUTH, NORTH], deaffiliate: [PATROL] };
  const text = renderAffiliationCommand(command);
  assert.match(text, new RegExp(`^<\\?xml version="1.0" encoding="UTF-8"\\?><command-list xmlns="${AFFILIATION_COMMAND_NS}"><affiliate><group>`));
  assert.deepEqual(parseAffiliationCommand(text), command);
  assert.doesNotMatch(renderAffiliationCommand({ affiliate: [SOUTH], deaffiliate: [] }), /de-affiliate/);
});

void test('the rendered mcptt-info names the target as request URI and the asking user as calling user', () => {
  const info = renderMcInfo('mcptt', 'sip:bob@police.example' as McUri, 'sip:dispatch@police.example' as McUri);
  assert.equal(parseRequestUri(info), 'sip:bob@police.example');
  assert.match(info, /<mcptt-calling-user-id type="Normal"><mcpttURI>sip:dispatch@police.example<\/mcpttURI>/);
});

void test('one media type per service, and only those', () => {
  assert.equal(serviceOfCommandType(AFFILIATION_COMMAND_TYPE.mcdata), 'mcdata');
  assert.equal(serviceOfCommandType('application/vnd.3gpp.mcptt-affiliation-command+xml'), 'mcptt');
  assert.equal(serviceOfCommandType('application/pidf+xml'), undefined);
});

const refused: [name: string, text: string, field: string][] = [
  ['a DOCTYPE with an entity (billion laughs)', `<?xml version="1.0"?><!DOCTYPE command-list [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]>${cmd('<affiliate><group>&b;</group></affiliate>')}`, 'affiliation-command'],
  ['an external entity', `<!DOCTYPE command-list SYSTEM "file:///etc/passwd">${cmd('')}`, 'affiliation-command'],
  ['not well-formed', cmd('<affiliate><group>sip:a@b.c</affiliate>'), 'affiliation-command'],
  ['a wrong root', `<commands xmlns="${AFFILIATION_COMMAND_NS}"/>`, 'affiliation-command'],
  ['no namespace', '<command-list><affiliate><group>sip:a@b.c</group></affiliate></command-list>', 'affiliation-command'],
  ['nesting too deep', cmd('<x:a xmlns:x="urn:e">'.repeat(1) + '<b>'.repeat(30) + '</b>'.repeat(30) + '</x:a>'), 'affiliation-command'],
  ['a bad group URI', cmd(`<affiliate><group>${PATROL}</group><group>not a uri</group></affiliate>`), 'affiliate[1]'],
  ['a bad group to leave', cmd('<de-affiliate><group></group></de-affiliate>'), 'de-affiliate[0]'],
  ['a repeated group', cmd(`<affiliate><group>${PATROL}</group><group>SIP:patrol@POLICE.example</group></affiliate>`), 'affiliate[1]'],
  ['a group in both lists', cmd(`<affiliate><group>${PATROL}</group></affiliate><de-affiliate><group>${PATROL}</group></de-affiliate>`), 'de-affiliate'],
  ['no group at all', cmd('<affiliate/>'), 'affiliate'],
  ['two affiliate lists', cmd(`<affiliate><group>${PATROL}</group></affiliate><affiliate><group>${NORTH}</group></affiliate>`), 'affiliate'],
];
for (const [name, text, field] of refused) {
  void test(`refuses ${name} with 400 naming ${field}`, () => {
    assert.throws(
      () => parseAffiliationCommand(text),
      (e) => e instanceof MusterError && e.code === 'bad-request' && e.field === field,
    );
  });
}

void test('more groups than one request may carry is too large', () => {
  const many = Array.from({ length: 101 }, (_, i) => `<group>sip:g${i}@police.example</group>`).join('');
  assert.throws(() => parseAffiliationCommand(cmd(`<affiliate>${many}</affiliate>`)), (e) => e instanceof MusterError && e.code === 'too-large');
});

function message(body: { contentType: string; bytes: Buffer } | undefined): IncomingRequest {
  const head = ['MESSAGE sip:mc-server@police.example SIP/2.0', 'Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1', 'From: <sip:dispatch@police.example>;tag=1', 'To: <sip:mc-server@police.example>', 'Call-ID: c1', 'CSeq: 1 MESSAGE', 'Max-Forwards: 70'];
  if (body) head.push(`Content-Type: ${body.contentType}`);
  head.push(`Content-Length: ${body?.bytes.length ?? 0}`);
  const msg = parseMessage(Buffer.concat([Buffer.from(head.join('\r\n') + '\r\n\r\n'), body?.bytes ?? Buffer.alloc(0)]), { stream: false });
  assert.equal(msg.kind, 'request');
  return msg;
}

const infoPart = { type: 'application/vnd.3gpp.mcptt-info+xml', body: renderMcInfo('mcptt', 'sip:bob@police.example' as McUri, 'sip:dispatch@police.example' as McUri) };
const commandPart = { type: AFFILIATION_COMMAND_TYPE.mcptt, body: renderAffiliationCommand({ affiliate: [SOUTH], deaffiliate: [] }) };

void test('a MESSAGE body: the target from mcptt-info, the service from the command type, the groups from the command', () => {
  assert.deepEqual(readCommandMessage(message(renderMultipart([infoPart, commandPart]))), { service: 'mcptt', target: 'sip:bob@police.example', affiliate: [SOUTH], deaffiliate: [] });
});

void test('a MESSAGE without the mcptt-info part is a 400 naming mcptt-request-uri', () => {
  assert.throws(() => readCommandMessage(message(renderMultipart([commandPart]))), (e) => e instanceof MusterError && e.field === 'mcptt-request-uri');
});

void test('a MESSAGE without a command (or with two) is 415', () => {
  assert.throws(() => readCommandMessage(message(renderMultipart([infoPart]))), (e) => e instanceof SipRefusal && e.status === 415);
  assert.throws(() => readCommandMessage(message(renderMultipart([infoPart, commandPart, commandPart]))), (e) => e instanceof SipRefusal && e.status === 415);
  assert.throws(() => readCommandMessage(message(undefined)), (e) => e instanceof SipRefusal && e.status === 415);
});
