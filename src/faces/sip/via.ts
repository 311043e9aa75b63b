// RFC 3261 §20.42 (Via), §18.2.2 (where a server sends a response) and RFC 3581 (rport).
import { headerParams } from './parser.ts';

export interface TopVia {
  transport: string;
  host: string;
  port: number | undefined;
  branch: string | undefined;
  received: string | undefined;
  /** RFC 3581: present (maybe without value) when the client asked for the source port. */
  rport: boolean;
}

const VIA = /^SIP\s*\/\s*2\.0\s*\/\s*([A-Za-z]+)\s+(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::([0-9]{1,5}))?\s*(;.*)?$/;

export function parseVia(value: string): TopVia | undefined {
  const m = VIA.exec(value.trim());
  if (!m) return undefined;
  const port = m[3] ? Number(m[3]) : undefined;
  if (port !== undefined && (port < 1 || port > 65535)) return undefined; // no answer can go there (dgram throws)
  // The parameters in one pass (issue 6's profile: three headerParam scans per Via, on every request).
  const params = headerParams(value);
  const branch = params.get('branch');
  const received = params.get('received');
  const host = m[2]!;
  return {
    transport: m[1]!.toUpperCase(),
    host: host.startsWith('[') ? host.slice(1, -1) : host,
    port,
    branch: typeof branch === 'string' ? branch : undefined,
    received: typeof received === 'string' ? received : undefined,
    rport: params.has('rport'),
  };
}

/**
 * §18.2.1 (with RFC 3581 §4): the top Via as the server records it, with `received` when the sent-by host
 * differs from the packet's source, and `rport=<port>` filled in when the client asked for it.
 */
export function stampVia(value: string, source: { address: string; port: number }, via: TopVia | undefined = parseVia(value)): string {
  if (!via) return value;
  let out = value;
  if (via.rport) out = out.replace(/;\s*rport(=[0-9]*)?/i, `;rport=${source.port}`);
  if (via.host !== source.address || via.rport) {
    out = out.replace(/;\s*received=[^;]*/i, '') + `;received=${source.address}`;
  }
  return out;
}

/**
 * §18.2.2 + RFC 3581 §4: a UDP response goes to the `received` address this server records (the packet's source, as
 * stampVia writes it) at `rport` (the source port) or the sent-by port (default 5060). A `received` the client put in
 * its own Via is not ours and never followed: it would make the server answer, and flood, an address of the sender's
 * choosing.
 */
export function responseDestination(via: TopVia, source: { address: string; port: number }): { address: string; port: number } {
  return { address: source.address, port: via.rport ? source.port : (via.port ?? 5060) };
}
