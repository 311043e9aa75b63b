// The console (DESIGN.md "client SDK / CLI / console"): a page and its script for a browser, served without a
// credential; everything it shows comes from /mc/v1 with the credential its user pastes in. The script is
// src/console/ bundled with esbuild at its first request, in memory.
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { build } from 'esbuild';
import type { HttpFaceDeps } from './app.ts';

const CONSOLE_DIR = fileURLToPath(new URL('../../console/', import.meta.url));

/** No inline script or style, nothing from elsewhere, no framing, no form posts: the page talks only to this server's API. */
export const CONSOLE_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const HEADERS = {
  'content-security-policy': CONSOLE_CSP,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
  // The bundle is rebuilt at each start: a browser must ask again rather than keep an old one.
  'cache-control': 'no-cache',
} as const;

type Bundle = { ok: true; js: string } | { ok: false; error: string };
let bundle: Promise<Bundle> | undefined;

/** The console's script, built once per process (several systems in one process share it); never rejects. */
export function consoleBundle(): Promise<Bundle> {
  bundle ??= build({
    entryPoints: [`${CONSOLE_DIR}main.ts`],
    bundle: true,
    write: false,
    format: 'esm',
    platform: 'browser',
    target: ['es2022'],
    charset: 'utf8',
    legalComments: 'none',
    logLevel: 'silent',
  }).then(
    (r): Bundle => ({ ok: true, js: r.outputFiles[0]!.text }),
    (e: unknown): Bundle => ({ ok: false, error: e instanceof Error ? e.message : String(e) }),
  );
  return bundle;
}

export async function consoleRoutes(app: FastifyInstance, deps: HttpFaceDeps): Promise<void> {
  // A GMS-only system has no /mc/v1 for the console to talk to.
  if (deps.config.role === 'gms') return;
  const [html, css, icon] = await Promise.all(['index.html', 'app.css', 'icon.svg'].map((f) => readFile(`${CONSOLE_DIR}${f}`, 'utf8')));
  const send = (reply: FastifyReply, type: string, body: string): FastifyReply => reply.headers(HEADERS).type(type).send(body);
  const hide = { schema: { hide: true } };
  let buildFailureLogged = false;

  app.get('/console', hide, async (_req, reply) => send(reply, 'text/html; charset=utf-8', html!));
  app.get('/console/', hide, async (_req, reply) => send(reply, 'text/html; charset=utf-8', html!));
  app.get('/console/app.css', hide, async (_req, reply) => send(reply, 'text/css; charset=utf-8', css!));
  app.get('/console/icon.svg', hide, async (_req, reply) => send(reply, 'image/svg+xml', icon!));
  // Built at its first request, not at start: a server whose console nobody opens never runs esbuild (its own process).
  app.get('/console/app.js', hide, async (_req, reply) => {
    const b = await consoleBundle();
    if (!b.ok && !buildFailureLogged) deps.log.error({ error: b.error }, 'the console script did not build: /console/app.js answers 503');
    buildFailureLogged ||= !b.ok;
    if (!b.ok) return reply.code(503).headers(HEADERS).send({ error: { code: 'unavailable', message: 'the console script did not build (see the server log)' } });
    return send(reply, 'text/javascript; charset=utf-8', b.js);
  });
}
