// The console's operator view (README "Console"): the system's health (GET /healthz), user profiles (/admin/v1/users,
// as `muster user-profile`), group policies (/gms/v1/groups, as `muster group`), the audit log (docs/audit.md) and
// partner re-synchronisation (as `muster resync`), all through the SDK's OperatorClient. The server decides what an
// operator credential may do on every call; this file only chooses what to show.
import { MusterClientError, OperatorClient, type AuditEntry, type AuditQuery, type DeletedAnswer, type GroupDocument, type Health, type NotInForce, type UserProfileDocument } from '../client/muster-client.ts';
import { inForceLine, resyncLines } from '../cli/output.ts';
import { MC_SERVICES, isMcService, type McService } from '../domain/services.ts';
import { busy, byId, clearError, h, replace, showError, table, uriCell, uriList } from './dom.ts';

/** The signed-in operator: the SDK client with the credential, what ends its calls at sign-out, the audit cursor. */
interface OperatorSession {
  client: OperatorClient;
  stop: AbortController;
  /** The last audit search and the `next` of its last page, for "Next page". */
  audit: { query: AuditQuery; next: number | null } | undefined;
}

let op: OperatorSession | undefined;

/** As `muster resync`: the run waits for every partner's report (each bounded by 5 minutes at the server). */
const RESYNC_TIMEOUT_MS = 330_000;

const RESULT_BOXES = ['health-result', 'resync-result', 'profile-shown', 'profile-result', 'group-shown', 'group-result', 'audit-result'];
const ERROR_BOXES = ['health-error', 'resync-error', 'profile-error', 'group-error', 'audit-error'];

// ---- sign in and out ----

/**
 * Opens the operator's view once the server accepted the credential for an operator-only read (the audit log): a
 * credential that only claims the role gets the server's 401 or 403, and no view.
 */
export async function signInOperator(token: string): Promise<void> {
  const client = new OperatorClient({ server: location.origin, token });
  await client.audit({ limit: 1 });
  const s: OperatorSession = { client, stop: new AbortController(), audit: undefined };
  op = s;
  byId('whoami').textContent = 'Signed in as operator';
  byId('operator-view').hidden = false;
  byId('health-title').focus();
  void refreshHealth(s);
}

export function signOutOperator(): void {
  op?.stop.abort();
  op = undefined;
  for (const id of RESULT_BOXES) byId(id).replaceChildren();
  for (const id of ERROR_BOXES) clearError(byId(id));
  for (const kind of ['profile', 'group']) {
    byId(`${kind}-edit-form`).hidden = true;
    byId(`${kind}-delete-confirm`).hidden = true;
  }
  byId('audit-next').hidden = true;
  byId('operator-view').hidden = true;
}

/** Wires a form's submit to `work` for the signed-in operator, its buttons disabled meanwhile, its error in `errorId`. */
function onSubmit(formId: string, errorId: string, work: (s: OperatorSession, submitter: string) => Promise<void>): void {
  const form = byId<HTMLFormElement>(formId);
  form.addEventListener('submit', (e) => {
    // The page never posts a form (form-action 'none'): it calls the API itself.
    e.preventDefault();
    const submitter = e.submitter instanceof HTMLButtonElement ? e.submitter.value : '';
    run(form, errorId, (s) => work(s, submitter));
  });
}

/** Runs `work` for the signed-in operator with `within`'s buttons disabled meanwhile and its error shown in `errorId`. */
function run(within: HTMLElement, errorId: string, work: (s: OperatorSession) => Promise<void>): void {
  const s = op;
  if (!s) return;
  const box = byId(errorId);
  clearError(box);
  void busy([...within.querySelectorAll('button')], () => work(s)).catch((err: unknown) => {
    if (op === s) showError(box, err);
  });
}

// ---- health ----

const stateClass = (value: string): string => (/(^|:)(up|ok|none)$/.test(value) ? 'health-up' : 'health-down');
const stateCell = (value: string): HTMLTableCellElement => h('td', { class: stateClass(value) }, value);

function renderHealth(health: Health): void {
  const rows: (string | HTMLTableCellElement)[][] = [
    ['Store', stateCell(health.store)],
    ['GMS', stateCell(health.gms)],
    ['Fabric', stateCell(health.fabric)],
  ];
  if (health.instances !== undefined) rows.push(['Instances', health.instances.join(', ') || 'no other live instance']);
  if (health.instancesBehind !== undefined) rows.push(['Instances behind', health.instancesBehind.length === 0 ? 'none' : stateCell(health.instancesBehind.join(', '))]);
  for (const [partner, state] of Object.entries(health.partners)) rows.push([`Partner ${partner}`, stateCell(state)]);
  replace(
    byId('health-result'),
    h('p', {}, `${health.system}: `, h('strong', { class: stateClass(health.status) }, health.status), ` (checked ${new Date().toLocaleTimeString()})`),
    table(`Health of ${health.system}`, ['Dependency', 'State'], rows),
    Object.keys(health.partners).length === 0 && h('p', { class: 'muted' }, 'No partner systems.'),
  );
}

async function refreshHealth(s: OperatorSession): Promise<void> {
  const box = byId('health-error');
  try {
    const health = await busy([byId<HTMLButtonElement>('health-refresh')], () => s.client.health({ signal: s.stop.signal }));
    if (op !== s) return;
    renderHealth(health);
    byId('whoami').textContent = `Signed in as operator of ${health.system}`;
    clearError(box);
  } catch (e) {
    if (op === s) showError(box, e);
  }
}

// ---- user profiles and group policies ----

/** What differs between the two documents an operator edits (as `muster user-profile` and `muster group` do). */
interface DocumentKind<D extends { id: string }> {
  prefix: 'profile' | 'group';
  noun: string;
  get(c: OperatorClient, id: string): Promise<D>;
  put(c: OperatorClient, doc: D): Promise<D & NotInForce>;
  remove(c: OperatorClient, id: string): Promise<DeletedAnswer>;
  /** Puts a stored document in the editor's fields; none: an empty editor for a new one. */
  fill(doc: D | undefined): void;
  /** The document the editor's fields describe. */
  read(id: string): D;
  /** The stored document as rows of a table. */
  rows(doc: D): [string, string][];
}

function serviceBoxes(fieldsetId: string): void {
  const fieldset = byId(fieldsetId);
  for (const s of MC_SERVICES) fieldset.append(h('label', {}, h('input', { type: 'checkbox', name: 'service', value: s, id: `${fieldsetId}-${s}` }), s));
}
const setServices = (fieldsetId: string, services: readonly string[]): void => {
  for (const box of byId(fieldsetId).querySelectorAll('input')) box.checked = services.includes(box.value);
};
const checkedServices = (fieldsetId: string): McService[] => [...byId(fieldsetId).querySelectorAll('input')].filter((b) => b.checked).map((b) => b.value).filter(isMcService);
const input = (id: string): HTMLInputElement => byId<HTMLInputElement>(id);
const textarea = (id: string): HTMLTextAreaElement => byId<HTMLTextAreaElement>(id);

const n2Text = (n2: UserProfileDocument['n2']): string =>
  typeof n2 === 'number' ? String(n2) : Object.entries(n2).map(([service, n]) => `${service}=${n}`).join(' ');

/** `3`, or per service `mcptt=3 mcdata=2`; what the API then refuses (a negative N2, an unknown service) it names itself. */
function parseN2(text: string): UserProfileDocument['n2'] {
  const t = text.trim();
  if (/^-?[0-9]+$/.test(t)) return Number(t);
  const pairs = t.split(/[\s,]+/).filter(Boolean).map((p) => /^([a-z]+)=(-?[0-9]+)$/.exec(p));
  if (pairs.length === 0 || pairs.some((p) => p === null)) throw new Error('N2: type one number, or one per service as mcptt=3 mcdata=2.');
  return Object.fromEntries(pairs.map((p) => [p![1]!, Number(p![2])]));
}

const remoteChangeText = (rc: UserProfileDocument['remoteChange']): string =>
  rc === true ? 'every user and group of this system' : rc === false ? 'none' : [`users: ${(rc.users ?? []).join(', ') || 'none'}`, `groups: ${(rc.groups ?? []).join(', ') || 'none'}`].join('; ');

const PROFILE: DocumentKind<UserProfileDocument> = {
  prefix: 'profile',
  noun: 'profile',
  get: (c, id) => c.getUser(id),
  put: (c, doc) => c.putUser(doc),
  remove: (c, id) => c.deleteUser(id),
  fill(doc) {
    setServices('profile-services', doc?.services ?? []);
    input('profile-n2').value = doc ? n2Text(doc.n2) : '';
    textarea('profile-groups').value = (doc?.groups ?? []).join('\n');
    const rc = doc?.remoteChange ?? false;
    byId<HTMLSelectElement>('profile-rc').value = rc === true ? 'all' : rc === false ? 'none' : 'listed';
    textarea('profile-rc-users').value = typeof rc === 'object' ? (rc.users ?? []).join('\n') : '';
    textarea('profile-rc-groups').value = typeof rc === 'object' ? (rc.groups ?? []).join('\n') : '';
    showRemoteChangeLists();
  },
  read(id) {
    const mode = byId<HTMLSelectElement>('profile-rc').value;
    const remoteChange = mode === 'all' ? true : mode === 'listed' ? { users: uriList(textarea('profile-rc-users').value), groups: uriList(textarea('profile-rc-groups').value) } : false;
    return { id, services: checkedServices('profile-services'), n2: parseN2(input('profile-n2').value), groups: uriList(textarea('profile-groups').value), remoteChange };
  },
  rows: (doc) => [
    ['Services', doc.services.join(', ') || 'none'],
    ['N2', n2Text(doc.n2)],
    ['Allowed groups', doc.groups.join(', ') || 'none'],
    ['Remote-change right', remoteChangeText(doc.remoteChange)],
  ],
};

const GROUP: DocumentKind<GroupDocument> = {
  prefix: 'group',
  noun: 'group',
  get: (c, id) => c.getGroup(id),
  put: (c, doc) => c.putGroup(doc),
  remove: (c, id) => c.deleteGroup(id),
  fill(doc) {
    input('group-display-name').value = doc?.displayName ?? '';
    setServices('group-services', doc?.services ?? []);
    input('group-enabled').checked = doc?.enabled ?? true;
    input('group-deaffiliation-forbidden').checked = doc?.deaffiliationForbidden ?? false;
    textarea('group-members').value = (doc?.members ?? []).join('\n');
  },
  read(id) {
    const displayName = input('group-display-name').value.trim();
    return {
      id,
      ...(displayName !== '' ? { displayName } : {}),
      services: checkedServices('group-services'),
      enabled: input('group-enabled').checked,
      members: uriList(textarea('group-members').value),
      deaffiliationForbidden: input('group-deaffiliation-forbidden').checked,
    };
  },
  rows: (doc) => [
    ['Display name', doc.displayName ?? ''],
    ['Services', doc.services.join(', ')],
    ['Enabled', doc.enabled ? 'yes' : 'no'],
    ['Members may de-affiliate', doc.deaffiliationForbidden ? 'no' : 'yes'],
    ['Members', doc.members.join(', ') || 'none'],
    ...(doc.revision !== undefined ? [['Revision', String(doc.revision)] as [string, string]] : []),
  ],
};

function showRemoteChangeLists(): void {
  byId('profile-rc-lists').hidden = byId<HTMLSelectElement>('profile-rc').value !== 'listed';
}

/** A change's outcome as `muster user-profile` prints it; a 202 says which instances may still serve the old one. */
function renderOutcome(box: HTMLElement, id: string, verb: 'stored' | 'deleted', answer: NotInForce | undefined): void {
  const notConfirmed = answer?.notConfirmed ?? [];
  if (notConfirmed.length === 0) {
    replace(box, h('p', { class: 'in-force' }, inForceLine(id, verb, [])));
    return;
  }
  replace(
    box,
    h(
      'div',
      { class: 'not-in-force', role: 'status' },
      h('strong', {}, `${verb === 'stored' ? 'Stored' : 'Deleted'}, but not yet in force everywhere (202)`),
      h('p', { class: 'warning' }, answer?.warning ?? 'not yet in force at every instance'),
      h('p', {}, 'Instances that may still serve the old one:'),
      h('ul', { class: 'not-confirmed' }, ...notConfirmed.map((i) => h('li', {}, i))),
    ),
  );
}

/** Without the fields the server adds to a change's answer: what is stored. */
function stored<D>(answer: D & NotInForce): D {
  const doc: D & NotInForce = { ...answer };
  delete doc.notConfirmed;
  delete doc.warning;
  return doc;
}

function wireDocument<D extends { id: string }>(kind: DocumentKind<D>): void {
  const p = kind.prefix;
  const editor = byId<HTMLFormElement>(`${p}-edit-form`);
  const title = byId(`${p}-edit-title`);
  const shown = byId(`${p}-shown`);
  const result = byId(`${p}-result`);
  const confirm = byId(`${p}-delete-confirm`);
  /** The ID the editor is for: the one looked up, never what the lookup field says now. */
  let editing = '';
  const show = (doc: D): void => replace(shown, table(doc.id, ['Field', 'Value'], kind.rows(doc).map(([name, value]) => [name, name === 'Members' || name === 'Allowed groups' ? uriCell(value) : value])));

  onSubmit(`${p}-lookup-form`, `${p}-error`, async (s) => {
    const id = input(`${p}-id`).value.trim();
    shown.replaceChildren();
    result.replaceChildren();
    editor.hidden = true;
    confirm.hidden = true;
    try {
      const doc = await kind.get(s.client, id);
      editing = doc.id;
      show(doc);
      kind.fill(doc);
      title.textContent = `Edit the ${kind.noun} of ${doc.id}`;
    } catch (e) {
      if (!(e instanceof MusterClientError && e.status === 404)) throw e;
      // Nothing stored under this ID: the same editor creates it, as `muster ... put` would.
      editing = id;
      kind.fill(undefined);
      title.textContent = `New ${kind.noun} ${id} (not stored yet)`;
      showError(byId(`${p}-error`), e);
    }
    editor.hidden = false;
    title.focus();
  });

  onSubmit(`${p}-edit-form`, `${p}-error`, async (s) => {
    confirm.hidden = true;
    result.replaceChildren();
    const answer = await kind.put(s.client, kind.read(editing));
    show(stored(answer));
    kind.fill(stored(answer));
    title.textContent = `Edit the ${kind.noun} of ${editing}`;
    renderOutcome(result, editing, 'stored', answer);
  });

  byId(`${p}-delete`).addEventListener('click', () => {
    confirm.hidden = false;
    byId(`${p}-delete-yes`).focus();
  });
  byId(`${p}-delete-no`).addEventListener('click', () => {
    confirm.hidden = true;
    byId(`${p}-delete`).focus();
  });
  byId(`${p}-delete-yes`).addEventListener('click', () =>
    run(editor, `${p}-error`, async (s) => {
      const answer = await kind.remove(s.client, editing);
      confirm.hidden = true;
      editor.hidden = true;
      shown.replaceChildren();
      renderOutcome(result, editing, 'deleted', answer);
      input(`${p}-id`).focus();
    }),
  );
}

// ---- audit log ----

/** A `datetime-local` value (this browser's time) as ISO 8601 with a zone, as the API wants it; empty: no bound. */
const instant = (value: string): string | undefined => (value === '' ? undefined : new Date(value).toISOString());

function auditResult(result: unknown): HTMLTableCellElement {
  const text = result === null || result === undefined ? '' : JSON.stringify(result, null, 1);
  return h('td', {}, text.length > 120 ? h('details', {}, h('summary', {}, `${JSON.stringify(result).slice(0, 80)}...`), h('pre', {}, text)) : h('pre', {}, text));
}

function renderAudit(entries: AuditEntry[], next: number | null): void {
  const rows = entries.map((e) => [
    String(e.id),
    h('td', {}, h('time', { datetime: e.at }, new Date(e.at).toLocaleString())),
    uriCell(e.subject),
    e.role,
    uriCell(e.onBehalfOf ?? ''),
    e.action,
    e.service ?? '',
    uriCell(e.groups.join(', ')),
    String(e.httpStatus),
    e.errorCode ?? '',
    auditResult(e.result),
  ]);
  replace(
    byId('audit-result'),
    entries.length === 0
      ? h('p', {}, 'No entries.')
      : table(`Audit entries ${entries[0]!.id}-${entries[entries.length - 1]!.id}${next === null ? '' : ' (more: Next page)'}`, ['Id', 'At', 'Subject', 'Role', 'On behalf of', 'Action', 'Service', 'Groups', 'HTTP', 'Error', 'Result'], rows),
  );
  byId('audit-next').hidden = next === null;
}

// ---- start ----

/** Attaches the operator view's controls once; they act only while an operator is signed in. */
export function wireOperator(): void {
  serviceBoxes('profile-services');
  serviceBoxes('group-services');
  byId('profile-rc').addEventListener('change', showRemoteChangeLists);
  byId('health-refresh').addEventListener('click', () => {
    if (op) void refreshHealth(op);
  });
  wireDocument(PROFILE);
  wireDocument(GROUP);

  onSubmit('audit-form', 'audit-error', async (s, submitter) => {
    let query: AuditQuery;
    if (submitter === 'next' && s.audit !== undefined && s.audit.next !== null) {
      query = { ...s.audit.query, after: s.audit.next };
    } else {
      const text = (id: string): string | undefined => input(id).value.trim() || undefined;
      const limit = input('audit-limit').value.trim();
      const since = instant(input('audit-since').value);
      const until = instant(input('audit-until').value);
      const subject = text('audit-subject');
      const onBehalfOf = text('audit-on-behalf-of');
      query = { ...(subject ? { subject } : {}), ...(onBehalfOf ? { onBehalfOf } : {}), ...(since ? { since } : {}), ...(until ? { until } : {}), ...(limit !== '' ? { limit: Number(limit) } : {}) };
    }
    const page = await s.client.audit(query, { signal: s.stop.signal });
    s.audit = { query, next: page.next };
    renderAudit(page.entries, page.next);
  });

  onSubmit('resync-form', 'resync-error', async (s) => {
    const partner = input('resync-partner').value.trim();
    const out = byId('resync-result');
    replace(out, h('p', { class: 'muted' }, 'Re-synchronising...'));
    try {
      const { resyncs } = await s.client.resyncPartners(partner === '' ? undefined : partner, { signal: s.stop.signal, timeoutMs: RESYNC_TIMEOUT_MS });
      replace(
        out,
        resyncs.length === 0 && h('p', {}, 'This system has no partner systems.'),
        ...resyncs.map((r) => h('div', { class: `report report-${r.complete ? 'complete' : 'incomplete'}`, 'data-partner': r.partner }, resyncLines(r).join('\n'))),
      );
    } catch (e) {
      out.replaceChildren();
      throw e;
    }
  });
}
