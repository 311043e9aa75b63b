// The console's DOM helpers: every piece of data reaches the page as text (textContent), never as markup.
import { MusterClientError } from '../client/muster-client.ts';

type Child = Node | string | null | undefined | false;

/** An element with attributes (as attributes, never as HTML) and children (strings become text nodes). */
export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Record<string, string> = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) el.setAttribute(name, value);
  for (const child of children) if (child) el.append(child);
  return el;
}

/** An element the page must have: a missing one is a bug in index.html, said at once. */
export function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (!el) throw new Error(`index.html has no #${id}`);
  return el as T;
}

export function replace(parent: HTMLElement, ...children: Child[]): void {
  parent.replaceChildren(...children.filter((c): c is Node | string => Boolean(c)));
}

/** Shows an error as the API gave it: status, code, message and the field at fault. */
export function showError(box: HTMLElement, e: unknown): void {
  if (e instanceof MusterClientError) {
    replace(
      box,
      h('span', { class: 'code' }, e.status ? `${e.status} ${e.code}` : e.code),
      ': ',
      h('span', { class: 'message' }, e.message),
      e.field !== undefined && h('span', { class: 'field' }, `field: ${e.field}`),
    );
  } else replace(box, h('span', { class: 'message' }, e instanceof Error ? e.message : String(e)));
  box.hidden = false;
}

export function clearError(box: HTMLElement): void {
  box.replaceChildren();
  box.hidden = true;
}

/** A table with a header row; each cell a string (as text), or a node for the few cells that carry a class. */
export function table(caption: string, headings: string[], rows: (string | HTMLTableCellElement)[][]): HTMLTableElement {
  return h(
    'table',
    {},
    h('caption', {}, caption),
    h('thead', {}, h('tr', {}, ...headings.map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', {}, ...rows.map((cells) => h('tr', {}, ...cells.map((c) => (typeof c === 'string' ? h('td', {}, c) : c))))),
  );
}

/** A cell holding an ID (monospace, breaks anywhere). */
export const uriCell = (uri: string): HTMLTableCellElement => h('td', { class: 'uri' }, uri);

/** A cell whose class colours a status or outcome (`status-rejected`, `outcome-applied`, ...). */
export const classedCell = (kind: string, value: string, text = value): HTMLTableCellElement => h('td', { class: `${kind}-${value}` }, text);

/** Runs `work` with `button` disabled meanwhile, so a slow answer is not asked twice. */
export async function busy<T>(buttons: HTMLButtonElement[], work: () => Promise<T>): Promise<T> {
  for (const b of buttons) b.disabled = true;
  try {
    return await work();
  } finally {
    for (const b of buttons) b.disabled = false;
  }
}

/** Group or user URIs typed one per line, or separated by spaces or commas. */
export function uriList(text: string): string[] {
  return text.split(/[\s,]+/).filter((s) => s !== '');
}
