// `muster watch`: client 2's side of the remote change (TS 23.280 10.X.5.1.1 steps 5-7b, 10.X.5.1.2 steps 3-5).
// Follows the caller's event stream; acknowledges mandatory changes, accepts or rejects negotiated ones.
import { createInterface, type Interface } from 'node:readline';
import { Option, type Command } from 'commander';
import { MusterClientError, type AffiliationChangeEventData, type McEvent, type MusterClient } from '../../client/muster-client.ts';
import { isRecord } from '../../client/transport.ts';
import { asChange, asStatus, asStatusList } from '../../client/event-data.ts';
import { addClientOptions, clientContext, printJson, printLines, type ClientOptionValues } from '../client-options.ts';
import { changeEventLine, groupStatusLines, statusEventLines } from '../output.ts';

interface WatchOptionValues extends ClientOptionValues {
  accept?: boolean;
  reject?: boolean;
  ask?: boolean;
  lastEventId?: string;
}

/** How a negotiated change is decided. */
type Decision = 'accept' | 'reject' | 'ask' | 'leave';

export function registerWatch(program: Command): void {
  const cmd = program
    .command('watch')
    .description('follow the caller\'s events: change requests addressed to it and changes of its affiliations')
    .addOption(new Option('--accept', 'accept every negotiated change').conflicts(['reject', 'ask']))
    .addOption(new Option('--reject', 'reject every negotiated change').conflicts(['ask']))
    .addOption(new Option('--ask', 'ask "accept? [y/N]" for each negotiated change (default when stdin is a terminal)'))
    .option('--last-event-id <id>', 'resume after this event');
  addClientOptions(cmd)
    .addHelpText(
      'after',
      `
Mandatory changes are acknowledged at once. Negotiated changes are asked on the terminal,
answered by --accept / --reject, or left unanswered when stdin is not a terminal and neither is given.
One line per event (JSON lines with --json: {"id","type","data"} per event, {"type":"answer",...} per answer).
A dropped connection is resumed with Last-Event-ID. Runs until Ctrl-C (exit 0).`,
    )
    .action(async (values: WatchOptionValues) => {
      const { client, json } = clientContext(values);
      const decision: Decision = values.accept ? 'accept' : values.reject ? 'reject' : values.ask || process.stdin.isTTY ? 'ask' : 'leave';
      const stop = new AbortController();
      const onSignal = (): void => stop.abort();
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
      const prompt = decision === 'ask' ? new UserPrompt(onSignal) : undefined;
      const watcher = new Watcher(client, json, decision, prompt, stop.signal);
      try {
        for await (const event of client.eventsWithReconnect({
          ...(values.lastEventId ? { lastEventId: values.lastEventId } : {}),
          signal: stop.signal,
          onReconnect: (info) => {
            const why = info.error ? info.error.message : 'the server closed the event stream';
            const from = info.lastEventId ? ` after event ${info.lastEventId}` : '';
            process.stderr.write(`muster: ${why}; reconnecting in ${(info.delayMs / 1000).toFixed(1)} s${from}\n`);
          },
        })) {
          await watcher.handle(event);
        }
      } finally {
        prompt?.close();
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
      }
    });
}

class Watcher {
  constructor(
    private readonly client: MusterClient,
    private readonly json: boolean,
    private readonly decision: Decision,
    private readonly prompt: UserPrompt | undefined,
    private readonly signal: AbortSignal,
  ) {}

  async handle(event: McEvent): Promise<void> {
    if (this.json) printJson(event);
    const change = event.type === 'affiliation-change' ? asChange(event.data) : undefined;
    const status = event.type === 'affiliation-status' ? asStatus(event.data) : undefined;
    if (change) {
      if (!this.json) printLines([changeEventLine(change)]);
      await this.answer(change);
    } else if (status) {
      if (!this.json) printLines(statusEventLines(status));
    } else if (!this.json) {
      printLines([`${event.type} ${JSON.stringify(event.data)}`]);
    }
  }

  private async answer(change: AffiliationChangeEventData): Promise<void> {
    let accept: boolean;
    if (change.mode === 'mandatory') accept = true; // 10.X.5.1.1 step 7b: an acknowledgement, not a choice
    else if (this.decision === 'leave') {
      if (!this.json) printLines(['  not answered (no terminal: give --accept, --reject or --ask)']);
      return;
    } else if (this.decision === 'ask') {
      const yes = await this.ask();
      if (yes === undefined) return; // stopped while asking
      accept = yes;
    } else accept = this.decision === 'accept';

    let result: unknown;
    try {
      result = await this.client.answerChange(change.id, accept);
    } catch (e) {
      // A replayed change may be answered already or over (timed out): say so and keep watching.
      if (e instanceof MusterClientError && e.status >= 400 && e.status < 500 && e.status !== 401 && e.status !== 403) {
        if (this.json) printJson({ type: 'answer', changeId: change.id, accept, error: { status: e.status, code: e.code, message: e.message } });
        else printLines([`  not answered: ${e.status} ${e.code}: ${e.message}`]);
        return;
      }
      throw e;
    }
    if (this.json) {
      printJson({ type: 'answer', changeId: change.id, accept, result: result ?? null });
      return;
    }
    const word = change.mode === 'mandatory' ? 'acknowledged' : accept ? 'accepted' : 'rejected';
    const answered = isRecord(result) && Array.isArray(result['status']) ? asStatusList(result['status']) : undefined;
    const changed = answered ?? change.status;
    printLines([`  ${word}`, ...(changed ? groupStatusLines(changed, '  ') : [])]);
  }

  /** "accept? [y/N]": yes only for y or yes; undefined when watching stops meanwhile. */
  private async ask(): Promise<boolean | undefined> {
    if (!this.prompt) return false;
    const reply = await this.prompt.ask('accept? [y/N] ', this.signal);
    return reply === undefined ? undefined : /^y(es)?$/i.test(reply.trim());
  }
}

/**
 * The user's answers, a line each, from the terminal or from piped input. Lines that come before the question
 * (typed ahead, or all of a pipe at once) are kept for the next question; after the input ended, the answer is ''.
 */
class UserPrompt {
  private readonly rl: Interface;
  private readonly queued: string[] = [];
  private waiting: ((line: string) => void) | undefined;
  private ended = false;

  constructor(onInterrupt: () => void) {
    this.rl = createInterface({ input: process.stdin, output: process.stderr, terminal: process.stdin.isTTY === true });
    this.rl.on('SIGINT', onInterrupt); // a terminal in raw mode turns Ctrl-C into this event, not a signal
    this.rl.on('line', (line) => {
      if (this.waiting) this.take(line);
      else this.queued.push(line);
    });
    this.rl.on('close', () => {
      this.ended = true;
      if (process.stdin.isTTY) onInterrupt(); // Ctrl-D at the terminal ends watching
      this.take('');
    });
  }

  /** The next line; undefined when `signal` aborts first. */
  async ask(question: string, signal: AbortSignal): Promise<string | undefined> {
    this.rl.setPrompt(question);
    this.rl.prompt();
    const reply = await this.nextLine(signal);
    if (reply !== undefined && !process.stdin.isTTY) process.stderr.write(reply + '\n'); // a piped answer is not echoed
    return reply;
  }

  private nextLine(signal: AbortSignal): Promise<string | undefined> {
    const line = this.queued.shift();
    if (line !== undefined) return Promise.resolve(line);
    if (this.ended) return Promise.resolve('');
    return new Promise((resolve) => {
      const onAbort = (): void => {
        this.waiting = undefined;
        resolve(undefined);
      };
      signal.addEventListener('abort', onAbort, { once: true });
      this.waiting = (reply) => {
        signal.removeEventListener('abort', onAbort);
        resolve(reply);
      };
    });
  }

  private take(line: string): void {
    const waiting = this.waiting;
    this.waiting = undefined;
    waiting?.(line);
  }

  close(): void {
    this.rl.close();
  }
}

// Parsed by the SDK, shared with the console; re-exported for the CLI's tests.
export { asChange, asStatus };
