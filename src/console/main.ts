// The console's entry (README "Console"): sign-in with a pasted credential, the user's own affiliations, live events
// and change requests (TS 23.280 10.X.3, 10.X.5.1), and the dispatcher's reads and change requests, all through the SDK;
// an operator's credential opens the operator's view instead (operator.ts).
import { MusterClient, type AffiliationChangeEventData, type AffiliationStatusEventData, type McEvent, type UserAffiliations } from '../client/muster-client.ts';
import { asChange, asStatus } from '../client/event-data.ts';
import { MC_SERVICES, isMcService, type McService } from '../domain/services.ts';
import { REASON_TEXT, type RefusalReason } from '../domain/reasons.ts';
import type { ChangeMode } from '../domain/flows.ts';
import { busy, byId, classedCell, clearError, h, replace, showError, table, uriCell, uriList } from './dom.ts';
import { claimsOf, forgetCredential, keepCredential, storedCredential } from './session.ts';
import { signInOperator, signOutOperator, wireOperator } from './operator.ts';

/** One signed-in user: the SDK client with the credential, the ID the server verified, and what ends its stream. */
interface Session {
  client: MusterClient;
  me: string;
  stop: AbortController;
  /** Negotiated changes shown, by change ID: a replayed one is not offered twice. */
  offered: Map<string, HTMLLIElement>;
  refreshing: Promise<void> | undefined;
  refreshAgain: boolean;
}

let session: Session | undefined;

/** Events kept in the log: older ones are dropped so a long shift does not grow the page without end. */
const MAX_LOG = 200;

type GroupStatusLike = { groupId: string; status: string; reason?: string };

const reasonText = (reason: string): string => (reason in REASON_TEXT ? `${reason}: ${REASON_TEXT[reason as RefusalReason]}` : reason);
const statusText = (s: GroupStatusLike): string => (s.reason ? `${s.status} (${reasonText(s.reason)})` : s.status);
const statusTable = (caption: string, status: GroupStatusLike[]): HTMLTableElement =>
  table(caption, ['Group', 'Status'], status.map((s) => [uriCell(s.groupId), classedCell('status', s.status, statusText(s))]));
const when = (iso: string | undefined): string => (iso ? new Date(iso).toLocaleString() : '');
const time = (): HTMLTimeElement => {
  const now = new Date();
  return h('time', { datetime: now.toISOString() }, now.toLocaleTimeString());
};

function fillServices(select: HTMLSelectElement, withAll: boolean): void {
  const options = MC_SERVICES.map((s) => h('option', { value: s }, s));
  replace(select, withAll && h('option', { value: '' }, 'all services'), ...options);
}

const serviceOf = (select: HTMLSelectElement): McService | undefined => (isMcService(select.value) ? select.value : undefined);

// ---- sign in and out ----

function showSignedIn(): void {
  byId('sign-out').hidden = false;
  byId('sign-in').hidden = true;
}

async function signIn(token: string): Promise<void> {
  const { subject, role } = claimsOf(token);
  // The claim only picks which view to ask for; the server's answer to that view's first call decides.
  if (role === 'operator') {
    await signInOperator(token);
    keepCredential(token);
    showSignedIn();
    return;
  }
  if (subject === undefined) throw new Error('This is not a user credential (no subject in it): paste the output of `npx muster token --user <your URI>`.');
  const client = new MusterClient({ server: location.origin, token });
  // The first call checks the credential: the server answers with the ID it verified.
  const mine = await client.affiliationsOf(subject);
  keepCredential(token);
  const s: Session = { client, me: mine.mcServiceId, stop: new AbortController(), offered: new Map(), refreshing: undefined, refreshAgain: false };
  session = s;
  byId('whoami').textContent = `Signed in as ${s.me}`;
  showSignedIn();
  byId('signed-in').hidden = false;
  renderMine(mine);
  byId('mine-title').focus();
  void follow(s);
}

function signOut(): void {
  session?.stop.abort();
  session = undefined;
  signOutOperator();
  forgetCredential();
  for (const id of ['my-affiliations', 'affiliate-result', 'change-list', 'event-log', 'other-result', 'change-result', 'members-result']) byId(id).replaceChildren();
  for (const id of ['sign-in-error', 'mine-error', 'affiliate-error', 'events-error', 'other-error', 'change-error', 'members-error']) clearError(byId(id));
  for (const form of document.querySelectorAll('form')) form.reset();
  byId('no-changes').hidden = false;
  byId('stream-state').textContent = 'Not connected.';
  byId('whoami').textContent = 'Not signed in.';
  byId('sign-out').hidden = true;
  byId('signed-in').hidden = true;
  byId('sign-in').hidden = false;
  byId('credential').focus();
}

// ---- my affiliations ----

function renderMine(a: UserAffiliations): void {
  const parts = MC_SERVICES.map((service) => {
    const rows = a.affiliations.filter((x) => x.service === service);
    if (rows.length === 0) return h('p', { class: 'muted' }, `${service}: no affiliations`);
    return table(
      service,
      ['Group', 'State', 'Group state', 'Since'],
      rows.map((r) => [uriCell(r.groupId), classedCell('state', r.state), r.group ?? '', when(r.since)]),
    );
  });
  replace(byId('my-affiliations'), ...parts);
}

/** Reads the user's affiliations again; calls that come while one runs are folded into one more read after it. */
function refreshMine(s: Session): Promise<void> {
  if (s.refreshing) {
    s.refreshAgain = true;
    return s.refreshing;
  }
  s.refreshing = (async () => {
    const box = byId('mine-error');
    do {
      s.refreshAgain = false;
      try {
        const mine = await s.client.affiliationsOf(s.me, undefined, { signal: s.stop.signal });
        if (session !== s) return;
        renderMine(mine);
        clearError(box);
      } catch (e) {
        if (session === s) showError(box, e);
      }
    } while (s.refreshAgain && session === s);
  })().finally(() => (s.refreshing = undefined));
  return s.refreshing;
}

// ---- live events ----

async function follow(s: Session): Promise<void> {
  const state = byId('stream-state');
  const box = byId('events-error');
  state.textContent = 'Connecting...';
  try {
    const events = s.client.eventsWithReconnect({
      signal: s.stop.signal,
      onOpen: () => {
        state.textContent = 'Connected: events show here as they arrive.';
        clearError(box);
        // What changed while no stream was open (before it, or while it was cut) shows in the list too.
        void refreshMine(s);
      },
      onReconnect: (info) => {
        state.textContent = `Connection lost; reconnecting (attempt ${info.attempt})...`;
      },
    });
    for await (const event of events) {
      if (session !== s) return;
      onEvent(s, event);
    }
  } catch (e) {
    if (session !== s) return;
    state.textContent = 'Not connected.';
    showError(box, e);
  }
}

function onEvent(s: Session, event: McEvent): void {
  const change = event.type === 'affiliation-change' ? asChange(event.data) : undefined;
  const status = event.type === 'affiliation-status' ? asStatus(event.data) : undefined;
  if (change) {
    const entry = logEvent('affiliation-change', changeSummary(change));
    if (change.mode === 'mandatory') void acknowledge(s, change, entry);
    else offer(s, change);
  } else if (status) {
    logEvent('affiliation-status', statusSummary(status));
    void refreshMine(s);
  } else {
    logEvent(event.type, JSON.stringify(event.data));
  }
}

function changeSummary(c: AffiliationChangeEventData): string {
  const what = [c.affiliate.length > 0 && `affiliate ${c.affiliate.join(', ')}`, c.deaffiliate.length > 0 && `de-affiliate ${c.deaffiliate.join(', ')}`].filter(Boolean).join('; ');
  return `${c.mode} change from ${c.actor} (${c.service}): ${what}`;
}

const statusSummary = (st: AffiliationStatusEventData): string => `(${st.service}) ${st.status.map((x) => `${x.groupId} ${statusText(x)}`).join(', ')}`;

function logEvent(type: string, text: string): HTMLLIElement {
  const log = byId('event-log');
  const li = h('li', {}, time(), ' ', h('strong', {}, type), ' ', text);
  log.prepend(li);
  while (log.childElementCount > MAX_LOG) log.lastElementChild?.remove();
  return li;
}

/** A mandatory change is applied already: the client acknowledges it (10.X.5.1.1 step 7b), as `muster watch` does. */
async function acknowledge(s: Session, change: AffiliationChangeEventData, entry: HTMLLIElement): Promise<void> {
  try {
    await s.client.answerChange(change.id, true, { signal: s.stop.signal });
    entry.append(h('span', { class: 'muted' }, ' (acknowledged)'));
  } catch (e) {
    if (session !== s) return;
    const box = h('div', { class: 'error', role: 'alert' });
    entry.append(box);
    showError(box, e);
  }
  void refreshMine(s);
}

/** A negotiated change waits for the user's decision (10.X.5.1.2 steps 3-5). */
function offer(s: Session, change: AffiliationChangeEventData): void {
  if (s.offered.has(change.id)) return;
  const accept = h('button', { type: 'button' }, 'Accept');
  const reject = h('button', { type: 'button' }, 'Reject');
  const result = h('div', { 'aria-live': 'polite' });
  const box = h('div', { class: 'error', role: 'alert', hidden: '' });
  const li = h(
    'li',
    { 'data-change-id': change.id },
    h('p', {}, changeSummary(change)),
    change.deadline !== undefined && h('p', { class: 'muted' }, `Answer by ${when(change.deadline)}`),
    h('div', { class: 'buttons' }, accept, reject),
    result,
    box,
  );
  s.offered.set(change.id, li);
  byId('change-list').append(li);
  byId('no-changes').hidden = true;
  const answer = async (yes: boolean): Promise<void> => {
    clearError(box);
    try {
      const answered = await busy([accept, reject], () => s.client.answerChange(change.id, yes, { signal: s.stop.signal }));
      accept.remove();
      reject.remove();
      const st = answered as { state?: string; status?: GroupStatusLike[] } | undefined;
      replace(result, h('p', {}, yes ? 'Accepted' : 'Rejected', st?.state ? ` (${st.state})` : ''), st?.status && st.status.length > 0 && statusTable('What it did', st.status));
      void refreshMine(s);
    } catch (e) {
      if (session === s) showError(box, e);
    }
  };
  accept.addEventListener('click', () => void answer(true));
  reject.addEventListener('click', () => void answer(false));
}

// ---- forms ----

/** Wires a form's submit to `work`, with its buttons disabled while it runs and its error shown in `errorId`. */
function onSubmit(formId: string, errorId: string, work: (s: Session, submitter: string) => Promise<void>): void {
  const form = byId<HTMLFormElement>(formId);
  const box = byId(errorId);
  form.addEventListener('submit', (e) => {
    // The page never posts a form (form-action 'none'): it calls the API itself.
    e.preventDefault();
    const s = session;
    if (!s) return;
    const submitter = e.submitter instanceof HTMLButtonElement ? e.submitter.value : '';
    const buttons = [...form.querySelectorAll('button')];
    clearError(box);
    void busy(buttons, () => work(s, submitter)).catch((err: unknown) => {
      if (session === s) showError(box, err);
    });
  });
}

function required(list: string[], what: string): string[] {
  if (list.length === 0) throw new Error(`Type at least one ${what}.`);
  return list;
}

function wireForms(): void {
  const field = <T extends HTMLElement>(id: string): T => byId<T>(id);

  onSubmit('affiliate-form', 'affiliate-error', async (s, submitter) => {
    const groupIds = required(uriList(field<HTMLTextAreaElement>('affiliate-groups').value), 'group URI');
    const service = serviceOf(field<HTMLSelectElement>('affiliate-service')) ?? 'mcptt';
    const out = byId('affiliate-result');
    out.replaceChildren();
    const body = { mcServiceId: s.me, service, groupIds };
    const res = submitter === 'deaffiliate' ? await s.client.deaffiliate(body) : await s.client.affiliate(body);
    replace(out, statusTable(`${submitter === 'deaffiliate' ? 'De-affiliation' : 'Affiliation'} (${res.service})`, res.status));
    void refreshMine(s);
  });

  onSubmit('other-form', 'other-error', async (s) => {
    const user = field<HTMLInputElement>('other-id').value.trim();
    const out = byId('other-result');
    out.replaceChildren();
    const res = await s.client.affiliationsOf(user, serviceOf(field<HTMLSelectElement>('other-service')));
    replace(
      out,
      res.affiliations.length === 0
        ? h('p', {}, `${res.mcServiceId}: no affiliations`)
        : table(res.mcServiceId, ['Group', 'Service', 'State', 'Group state', 'Since'], res.affiliations.map((a) => [uriCell(a.groupId), a.service, classedCell('state', a.state), a.group ?? '', when(a.since)])),
    );
  });

  onSubmit('change-form', 'change-error', async (s) => {
    const mode: ChangeMode = field<HTMLSelectElement>('change-mode').value === 'negotiated' ? 'negotiated' : 'mandatory';
    const targets = required(uriList(field<HTMLTextAreaElement>('change-targets').value), 'target user URI');
    const affiliate = uriList(field<HTMLTextAreaElement>('change-affiliate').value);
    const deaffiliate = uriList(field<HTMLTextAreaElement>('change-deaffiliate').value);
    if (affiliate.length === 0 && deaffiliate.length === 0) throw new Error('Type at least one group to affiliate to or de-affiliate from.');
    const out = byId('change-result');
    replace(out, h('p', { class: 'muted' }, mode === 'negotiated' ? 'Waiting for the targets to answer...' : 'Sending...'));
    const service = serviceOf(field<HTMLSelectElement>('change-service')) ?? 'mcptt';
    try {
      const res = await s.client.change({ mcServiceId: s.me, service, mode, targets, affiliate, deaffiliate });
      replace(
        out,
        h('p', {}, `Change ${res.id} (${res.mode}, ${res.service})`),
        ...res.results.map((r) =>
          h(
            'div',
            { class: 'target-result' },
            h('p', {}, r.target, ': ', h('span', { class: `outcome-${r.outcome}` }, r.outcome)),
            r.status.length > 0 && statusTable(r.target, r.status),
          ),
        ),
      );
    } catch (e) {
      out.replaceChildren();
      throw e;
    }
  });

  onSubmit('members-form', 'members-error', async (s) => {
    const group = field<HTMLInputElement>('members-group').value.trim();
    const out = byId('members-result');
    out.replaceChildren();
    const res = await s.client.membersOf(group, serviceOf(field<HTMLSelectElement>('members-service')));
    replace(
      out,
      res.members.length === 0
        ? h('p', {}, `${res.groupId}: no affiliated members`)
        : table(res.groupId, ['Member', 'Service', 'Since'], res.members.map((m) => [uriCell(m.mcServiceId), m.service, when(m.since)])),
    );
  });
}

// ---- start ----

function start(): void {
  fillServices(byId<HTMLSelectElement>('affiliate-service'), false);
  fillServices(byId<HTMLSelectElement>('other-service'), true);
  fillServices(byId<HTMLSelectElement>('change-service'), false);
  fillServices(byId<HTMLSelectElement>('members-service'), true);
  wireForms();
  wireOperator();
  byId('refresh').addEventListener('click', () => {
    if (session) void refreshMine(session);
  });
  byId('sign-out').addEventListener('click', signOut);

  const form = byId<HTMLFormElement>('sign-in-form');
  const credential = byId<HTMLTextAreaElement>('credential');
  const box = byId('sign-in-error');
  const tryToken = async (token: string): Promise<void> => {
    clearError(box);
    try {
      await busy([...form.querySelectorAll('button')], () => signIn(token));
      credential.value = '';
    } catch (e) {
      forgetCredential();
      showError(box, e);
    }
  };
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const token = credential.value.trim().replace(/^Bearer\s+/i, '');
    if (token !== '') void tryToken(token);
  });
  // A reload of this tab keeps the user signed in; another tab or a new browser session does not.
  const kept = storedCredential();
  if (kept !== undefined) void tryToken(kept);
}

start();
