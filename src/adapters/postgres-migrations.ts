// Versioned schema of the shared PostgreSQL store (the tables of sqlite-migrations.ts); a migration is never edited
// once released, only appended. Text keys use COLLATE "C" so ORDER BY is byte order, as with SQLite's BINARY.
// JSON is kept as TEXT, byte for byte as written (key order included), as SQLite keeps it.
import type pg from 'pg';
import { inTransaction } from './postgres-pool.ts';

export const POSTGRES_MIGRATIONS: string[] = [
  `
  CREATE TABLE affiliations (
    user_id TEXT COLLATE "C" NOT NULL, service TEXT COLLATE "C" NOT NULL, group_id TEXT COLLATE "C" NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('affiliated', 'reserved')), updated_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, service, group_id)
  );
  CREATE INDEX affiliations_by_group ON affiliations (group_id, service);
  CREATE INDEX affiliations_reserved ON affiliations (updated_at) WHERE state = 'reserved';
  CREATE TABLE gms_outbox (
    seq BIGSERIAL PRIMARY KEY, user_id TEXT COLLATE "C" NOT NULL, service TEXT COLLATE "C" NOT NULL,
    group_id TEXT COLLATE "C" NOT NULL, status TEXT NOT NULL, created_at BIGINT NOT NULL
  );
  CREATE TABLE events (
    id BIGSERIAL PRIMARY KEY, user_id TEXT COLLATE "C" NOT NULL, type TEXT NOT NULL, data TEXT NOT NULL, created_at BIGINT NOT NULL
  );
  CREATE INDEX events_by_user ON events (user_id, id);
  CREATE TABLE user_profiles (id TEXT COLLATE "C" PRIMARY KEY, profile TEXT NOT NULL);
  CREATE TABLE change_requests (
    id TEXT COLLATE "C" NOT NULL, target TEXT COLLATE "C" NOT NULL, actor TEXT COLLATE "C" NOT NULL,
    service TEXT COLLATE "C" NOT NULL, mode TEXT NOT NULL, affiliate TEXT NOT NULL, deaffiliate TEXT NOT NULL,
    state TEXT NOT NULL, deadline BIGINT NOT NULL, result TEXT NOT NULL, created_at BIGINT NOT NULL,
    PRIMARY KEY (id, target)
  );
  CREATE INDEX change_requests_by_state ON change_requests (state);
  CREATE TABLE gms_groups (id TEXT COLLATE "C" PRIMARY KEY, document TEXT NOT NULL, revision INTEGER NOT NULL);
  CREATE TABLE gms_affiliations (
    group_id TEXT COLLATE "C" NOT NULL, service TEXT COLLATE "C" NOT NULL, user_id TEXT COLLATE "C" NOT NULL,
    status TEXT NOT NULL, source TEXT NOT NULL, seq BIGINT NOT NULL, updated_at BIGINT NOT NULL,
    PRIMARY KEY (group_id, service, user_id)
  );
  `,
  // 2: the audit log (docs/audit.md).
  `
  CREATE TABLE audit_log (
    id BIGSERIAL PRIMARY KEY, at BIGINT NOT NULL, subject TEXT COLLATE "C" NOT NULL, role TEXT NOT NULL,
    on_behalf_of TEXT COLLATE "C", action TEXT NOT NULL, service TEXT, groups TEXT NOT NULL, http_status INTEGER NOT NULL,
    error_code TEXT, result TEXT NOT NULL
  );
  CREATE INDEX audit_log_by_subject ON audit_log (subject, id);
  CREATE INDEX audit_log_by_on_behalf_of ON audit_log (on_behalf_of, id);
  CREATE INDEX audit_log_by_at ON audit_log (at);
  `,
  // 3: the SIP face's publications and subscriptions (src/faces/sip/README.md), shared by every instance.
  `
  CREATE TABLE sip_publications (
    user_id TEXT COLLATE "C" NOT NULL, service TEXT COLLATE "C" NOT NULL, etag TEXT COLLATE "C" NOT NULL,
    expires BIGINT NOT NULL, expires_at BIGINT, p_id TEXT, tuple_id TEXT, PRIMARY KEY (user_id, service),
    CONSTRAINT sip_publications_etag_key UNIQUE (etag)
  );
  CREATE INDEX sip_publications_by_expiry ON sip_publications (expires_at) WHERE expires_at IS NOT NULL;
  CREATE TABLE sip_subscriptions (
    id TEXT COLLATE "C" PRIMARY KEY, owner TEXT COLLATE "C" NOT NULL, call_id TEXT NOT NULL, local_tag TEXT NOT NULL,
    remote_tag TEXT NOT NULL, remote_from TEXT NOT NULL, remote_target TEXT NOT NULL, event_id TEXT,
    transport TEXT NOT NULL, remote_address TEXT NOT NULL, remote_port INTEGER NOT NULL,
    watcher TEXT COLLATE "C" NOT NULL, user_id TEXT COLLATE "C" NOT NULL, service TEXT COLLATE "C" NOT NULL,
    expires_at BIGINT NOT NULL, local_cseq BIGINT NOT NULL, remote_cseq BIGINT NOT NULL
  );
  CREATE INDEX sip_subscriptions_by_owner ON sip_subscriptions (owner);
  CREATE INDEX sip_subscriptions_by_user ON sip_subscriptions (user_id, id);
  `,
  // 4: a target's change requests, and the asked ones by deadline, found by index (as SQLite's migration 6): a
  // publication's look for its own and the expiry every second read every waiting negotiation otherwise. The hourly
  // prune of orphaned SIP subscriptions read every subscription; answered changes whose result was never stored.
  `
  CREATE INDEX change_requests_of_target ON change_requests (target, state, created_at);
  CREATE INDEX change_requests_asked_by_deadline ON change_requests (deadline) WHERE state = 'asked';
  CREATE INDEX sip_subscriptions_by_expiry ON sip_subscriptions (expires_at);
  CREATE INDEX change_requests_answered_unfinished ON change_requests (deadline) WHERE state IN ('accepted', 'rejected') AND result = 'null';
  `,
  // 5: a publication keeps its set of groups (as SQLite's migration 7).
  `
  ALTER TABLE sip_publications ADD COLUMN groups TEXT;
  `,
  // 6: when a de-affiliation of the record was sent to the group's host and its outcome not stored yet (as SQLite's
  // migration 8): every instance's re-synchronisation sees it, not only the instance that sent it. Null otherwise.
  `
  ALTER TABLE affiliations ADD COLUMN forwarded_at BIGINT;
  CREATE INDEX affiliations_forwarded ON affiliations (forwarded_at) WHERE forwarded_at IS NOT NULL;
  `,
];

/** The transaction-level advisory lock key that serialises migrations of every instance ('muster' in ASCII). */
const MIGRATION_LOCK = 0x6d7573746572;

/**
 * Applies the missing migrations in one transaction under an advisory lock, so instances starting together neither
 * race nor apply a version twice. Returns the versions applied now (empty when the schema was current).
 */
export async function migratePostgres(pool: pg.Pool): Promise<number[]> {
  return inTransaction(pool, async (c) => {
    await c.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
    await c.query('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)');
    const done = new Set((await c.query<{ version: number }>('SELECT version FROM schema_migrations')).rows.map((r) => r.version));
    const applied: number[] = [];
    for (const [i, sql] of POSTGRES_MIGRATIONS.entries()) {
      const version = i + 1;
      if (done.has(version)) continue;
      await c.query(sql);
      await c.query('INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)', [version, Date.now()]);
      applied.push(version);
    }
    return applied;
  });
}
