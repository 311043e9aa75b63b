// Versioned schema of the embedded store; a migration is never edited once released, only appended.
export const SQLITE_MIGRATIONS: string[] = [
  `
  CREATE TABLE affiliations (
    user_id TEXT NOT NULL, service TEXT NOT NULL, group_id TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('affiliated', 'reserved')), updated_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, service, group_id)
  ) WITHOUT ROWID;
  CREATE INDEX affiliations_by_group ON affiliations (group_id, service);
  CREATE TABLE gms_outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, user_id TEXT NOT NULL, service TEXT NOT NULL, group_id TEXT NOT NULL,
    status TEXT NOT NULL, created_at INTEGER NOT NULL
  );
  CREATE TABLE events (
    id INTEGER PRIMARY KEY AUTOINCREMENT, user_id TEXT NOT NULL, type TEXT NOT NULL, data TEXT NOT NULL, created_at INTEGER NOT NULL
  );
  CREATE INDEX events_by_user ON events (user_id, id);
  CREATE TABLE user_profiles (id TEXT PRIMARY KEY, profile TEXT NOT NULL);
  CREATE TABLE change_requests (
    id TEXT NOT NULL, target TEXT NOT NULL, actor TEXT NOT NULL, service TEXT NOT NULL, mode TEXT NOT NULL,
    affiliate TEXT NOT NULL, deaffiliate TEXT NOT NULL, state TEXT NOT NULL, deadline INTEGER NOT NULL,
    result TEXT NOT NULL, created_at INTEGER NOT NULL, PRIMARY KEY (id, target)
  );
  CREATE INDEX change_requests_by_state ON change_requests (state);
  CREATE TABLE gms_groups (id TEXT PRIMARY KEY, document TEXT NOT NULL, revision INTEGER NOT NULL);
  CREATE TABLE gms_affiliations (
    group_id TEXT NOT NULL, service TEXT NOT NULL, user_id TEXT NOT NULL, status TEXT NOT NULL,
    source TEXT NOT NULL, seq INTEGER NOT NULL, updated_at INTEGER NOT NULL,
    PRIMARY KEY (group_id, service, user_id)
  ) WITHOUT ROWID;
  `,
  // 2: the audit log (docs/audit.md).
  `
  CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER NOT NULL, subject TEXT NOT NULL, role TEXT NOT NULL,
    on_behalf_of TEXT, action TEXT NOT NULL, service TEXT, groups TEXT NOT NULL, http_status INTEGER NOT NULL,
    error_code TEXT, result TEXT NOT NULL
  );
  CREATE INDEX audit_log_by_subject ON audit_log (subject, id);
  CREATE INDEX audit_log_by_on_behalf_of ON audit_log (on_behalf_of, id);
  CREATE INDEX audit_log_by_at ON audit_log (at);
  `,
  // 3: the SIP face's publications and subscriptions (src/faces/sip/README.md), kept across restarts.
  `
  CREATE TABLE sip_publications (
    user_id TEXT NOT NULL, service TEXT NOT NULL, etag TEXT NOT NULL UNIQUE, expires INTEGER NOT NULL,
    expires_at INTEGER, p_id TEXT, tuple_id TEXT, PRIMARY KEY (user_id, service)
  ) WITHOUT ROWID;
  CREATE INDEX sip_publications_by_expiry ON sip_publications (expires_at) WHERE expires_at IS NOT NULL;
  CREATE TABLE sip_subscriptions (
    id TEXT PRIMARY KEY, owner TEXT NOT NULL, call_id TEXT NOT NULL, local_tag TEXT NOT NULL, remote_tag TEXT NOT NULL,
    remote_from TEXT NOT NULL, remote_target TEXT NOT NULL, event_id TEXT, transport TEXT NOT NULL,
    remote_address TEXT NOT NULL, remote_port INTEGER NOT NULL, watcher TEXT NOT NULL, user_id TEXT NOT NULL,
    service TEXT NOT NULL, expires_at INTEGER NOT NULL, local_cseq INTEGER NOT NULL, remote_cseq INTEGER NOT NULL
  ) WITHOUT ROWID;
  CREATE INDEX sip_subscriptions_by_owner ON sip_subscriptions (owner);
  CREATE INDEX sip_subscriptions_by_user ON sip_subscriptions (user_id, id);
  `,
  // 4: reservations found by an index of their own, as on PostgreSQL: the sweep (at start and every half minute)
  // read every affiliation row, a stall of about a second at 4,000,000 affiliations (issue 6, bench/scale-size.ts).
  `
  CREATE INDEX affiliations_reserved ON affiliations (updated_at) WHERE state = 'reserved';
  `,
  // 5: an audit entry on the user's own behalf (most: every affiliation) is found by its subject, so the on-behalf-of
  // index keeps only entries for someone else: one random index page fewer to write per request (issue 6, bench 1).
  `
  DROP INDEX audit_log_by_on_behalf_of;
  CREATE INDEX audit_log_for_someone_else ON audit_log (on_behalf_of, id) WHERE on_behalf_of IS NOT subject;
  `,
  // 6: a target's change requests, and the asked ones by deadline, found by index: with 10,000 negotiations waiting,
  // each publication's look for its own read all of them (0.5 ms), and the expiry every second did too (23-44 ms).
  // The hourly prune of orphaned SIP subscriptions read every subscription. Answered changes whose result was never
  // stored are found by index too, for the expiry round to finish them.
  `
  CREATE INDEX change_requests_of_target ON change_requests (target, state, created_at);
  CREATE INDEX change_requests_asked_by_deadline ON change_requests (deadline) WHERE state = 'asked';
  CREATE INDEX sip_subscriptions_by_expiry ON sip_subscriptions (expires_at);
  CREATE INDEX change_requests_answered_unfinished ON change_requests (deadline) WHERE state IN ('accepted', 'rejected') AND result = 'null';
  `,
  // 7: a publication keeps its set of groups (a JSON array), so an expiry that left them after another instance
  // stored a new publication gives them back (src/faces/sip/README.md, "Expiry against a new PUBLISH"). Null in
  // rows written before.
  `
  ALTER TABLE sip_publications ADD COLUMN groups TEXT;
  `,
  // 8: when a de-affiliation of the record was sent to the group's host and its outcome not stored yet (the store's
  // port, forwardedGroups): null otherwise. The stamps are swept with the reservations, all of them at start.
  `
  ALTER TABLE affiliations ADD COLUMN forwarded_at INTEGER;
  CREATE INDEX affiliations_forwarded ON affiliations (forwarded_at) WHERE forwarded_at IS NOT NULL;
  `,
];
