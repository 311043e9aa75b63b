// Benchmark 2 (issue 6): benchmark 1's workload where every request names partner groups: 10,000 users of the
// primary system, each request affiliating to or de-affiliating from 1-4 groups, partner and own groups in turn
// (so each request asks the partner), the groups of the partner hosted by a second `muster serve` on loopback.
// In the same run: the bare node:http ceiling, and the same primary with own groups only (benchmark 1's figure).
//   node --import tsx bench/affiliation-partners.ts [--seconds 10] [--connections 64] [--users 10000] [--warmup 5]
import { Muster, freePort, secret } from '../test/support/harness.ts';
import { DOMAIN, PARTNER_DOMAIN, affiliationRequests, arg, bareCeiling, benchConfig, groupCount, load, mixedGroupsOf, partnerSystem, sampleAnswer, table, tokensOf, user, writeResults, type Refusals } from './workload.ts';

const SECONDS = arg('--seconds', 10);
const CONNECTIONS = arg('--connections', 64);
const USERS = arg('--users', 10_000);
const WARMUP = arg('--warmup', 5);
const COMMAND = `node --import tsx bench/affiliation-partners.ts --seconds ${SECONDS} --connections ${CONNECTIONS} --users ${USERS} --warmup ${WARMUP}`;

const [primaryPort, partnerPort] = [await freePort(), await freePort()];
const shared = secret();
const config = benchConfig(USERS, primaryPort, { partner: { domain: PARTNER_DOMAIN, url: `http://127.0.0.1:${partnerPort}`, secret: shared } });
// All of the primary's requests reach the partner under one credential (the primary system's), so the partner's
// per-credential rate limit (default 200/s) would cap the run; it is lifted there, users keep theirs at the primary.
const partnerConfig = { rateLimit: { perSecond: 1_000_000, burst: 1_000_000 }, systems: [partnerSystem(USERS, partnerPort, { domain: DOMAIN, url: `http://127.0.0.1:${primaryPort}`, secret: shared })] };
const [primary, partner] = await Promise.all([Muster.start(config, undefined, 'sqlite'), Muster.start(partnerConfig, undefined, 'sqlite')]);
try {
  const tokens = await tokensOf(primary, USERS);
  const groups = groupCount(USERS);
  const sample = await sampleAnswer(primary.url(), tokens[2]!, user(2), mixedGroupsOf(2, groups).slice(0, 3));
  if (!sample.includes(`@${PARTNER_DOMAIN}","status":"affiliated"`)) throw new Error(`the partner did not affiliate: ${sample}`);
  const opts = { seconds: SECONDS, connections: CONNECTIONS };
  const partnerRefusals: Refusals = { answers: 0, refused: 0 };
  const ownRefusals: Refusals = { answers: 0, refused: 0 };
  const bareFigures = await bareCeiling(sample, affiliationRequests(USERS, tokens, { pick: mixedGroupsOf }), opts);
  // Warm-up, not measured, as in benchmark 1: each user's first credential verification (without it most of the
  // partner run's requests were first ones: 7.5 % of the primary's main thread verified signatures), and the JIT.
  if (WARMUP > 0) await load(primary.url(), affiliationRequests(USERS, tokens, { pick: mixedGroupsOf }), { ...opts, seconds: WARMUP });
  const withPartner = await load(primary.url(), affiliationRequests(USERS, tokens, { pick: mixedGroupsOf, refusals: partnerRefusals }), opts);
  const own = await load(primary.url(), affiliationRequests(USERS, tokens, { refusals: ownRefusals }), opts);

  const rows = [
    { what: 'bare node:http, same body size', ...bareFigures },
    { what: 'muster, partner and own groups (2 systems, SQLite, JWT)', ...withPartner, refused: partnerRefusals.refused },
    { what: 'muster, own groups only (benchmark 1 workload)', ...own, refused: ownRefusals.refused },
  ];
  const ratio = withPartner.requestsPerSecond / bareFigures.requestsPerSecond;
  const ratioVsOwn = withPartner.requestsPerSecond / own.requestsPerSecond;
  console.log(table(`\nHTTP affiliation with partner groups, ${USERS} users, ${groups} groups per system, ${CONNECTIONS} connections, ${SECONDS} s each`, rows));
  console.log(`answers refusing a group: partner run ${partnerRefusals.refused} of ${partnerRefusals.answers}, own run ${ownRefusals.refused} of ${ownRefusals.answers}`);
  console.log(`ratio partner run / bare: ${(ratio * 100).toFixed(1)} %\nratio partner run / own groups: ${(ratioVsOwn * 100).toFixed(1)} %\ncommand: ${COMMAND}`);
  writeResults('affiliation-partners', { command: COMMAND, users: USERS, groups, rows, ratio, ratioVsOwn });
} finally {
  await Promise.all([primary.stop(), partner.stop()]);
}
