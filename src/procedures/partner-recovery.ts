// When the primary server re-synchronises with a partner (resync-partner.ts): at start-up, when the partner comes
// back after being unreachable, after an undo that failed all its attempts (each once the partner answers its
// /healthz again), and when the operator asks. One re-synchronisation per partner at a time, each bounded in time.
import type { McServiceServer } from './context.ts';
import { resyncPartner, type ResyncReport } from './resync-partner.ts';

export interface PartnerRecoveryOptions {
  /** How often a partner that must be re-synchronised is probed until it answers (doubling after failed runs). */
  probeEveryMs: number;
  /** The longest wait between probes. */
  maxProbeEveryMs: number;
  /** One re-synchronisation's time bound. */
  runTimeoutMs: number;
  /** Follow-up runs in a row for records the partner spared as too recent. */
  maxFollowUps: number;
}

const START_UP = 'start-up';

export const PARTNER_RECOVERY_DEFAULTS: PartnerRecoveryOptions = { probeEveryMs: 1000, maxProbeEveryMs: 60_000, runTimeoutMs: 300_000, maxFollowUps: 3 };

interface Waiting {
  reason: string;
  timer?: NodeJS.Timeout;
  /** Failed runs in a row: the probe interval doubles with each. */
  failures: number;
}

export class PartnerRecovery {
  private readonly running = new Map<string, Promise<ResyncReport>>();
  /** An operator's run asked while one was running: it starts once that one ends, and later asks share it. */
  private readonly queued = new Map<string, Promise<ResyncReport>>();
  private readonly waiting = new Map<string, Waiting>();
  private readonly followUps = new Map<string, number>();
  private stopped = false;

  constructor(
    private readonly server: McServiceServer,
    private readonly opts: PartnerRecoveryOptions = PARTNER_RECOVERY_DEFAULTS,
  ) {}

  /** Start-up: every partner, once it answers; and from now on whenever the partner adapter reports trouble. */
  start(): void {
    this.server.partners.onTrouble((domain, trouble) => this.whenReachable(domain, trouble === 'unreachable' ? 'back after being unreachable' : 'undo failed'));
    for (const domain of this.server.partners.domains()) this.whenReachable(domain, START_UP);
  }

  /** Every partner, once it answers (reservations a crash left were swept: their requests may have been applied). */
  everyPartner(reason: string): void {
    for (const domain of this.server.partners.domains()) this.whenReachable(domain, reason);
  }

  /** A partner that has just started sent its re-synchronisation: re-synchronise the other way too. */
  partnerStarted(domain: string): void {
    if (this.server.partners.domains().includes(domain)) this.whenReachable(domain, 'partner restarted');
  }

  stop(): void {
    this.stopped = true;
    for (const w of this.waiting.values()) clearTimeout(w.timer);
    this.waiting.clear();
  }

  /** A re-synchronisation now, or after the one running (later asks while it waits share it); resolves with its report. */
  resync(domain: string, reason = 'operator'): Promise<ResyncReport> {
    const running = this.running.get(domain);
    if (!running) return this.run(domain, reason);
    const queued = this.queued.get(domain);
    if (queued) return queued;
    const next = running.then(
      () => this.run(domain, reason),
      () => this.run(domain, reason),
    );
    this.queued.set(domain, next);
    void next.finally(() => this.queued.get(domain) === next && this.queued.delete(domain)).catch(() => undefined);
    return next;
  }

  /** Re-synchronises `domain` once it answers its /healthz; several reasons while waiting make one run. */
  whenReachable(domain: string, reason: string, failures = 0): void {
    if (this.stopped) return;
    const w = this.waiting.get(domain);
    if (w) return;
    const entry: Waiting = { reason, failures };
    this.waiting.set(domain, entry);
    const delay = failures === 0 ? 0 : Math.min(this.opts.probeEveryMs * 2 ** failures, this.opts.maxProbeEveryMs);
    this.schedule(domain, entry, delay);
  }

  private schedule(domain: string, entry: Waiting, delay: number): void {
    entry.timer = setTimeout(() => void this.probe(domain, entry), delay);
    entry.timer.unref();
  }

  private async probe(domain: string, entry: Waiting): Promise<void> {
    if (this.stopped || this.waiting.get(domain) !== entry) return;
    if (!(await this.server.partners.reachable(domain))) {
      this.schedule(domain, entry, Math.min(this.opts.probeEveryMs * 2 ** entry.failures, this.opts.maxProbeEveryMs));
      return;
    }
    this.waiting.delete(domain);
    // A run already under way may have read its pages before the trouble: this one starts after it.
    const report = await this.resync(domain, entry.reason).catch((err: unknown) => ({ complete: false, error: String(err), spared: [], graceMs: 0 }));
    if (!report.complete) {
      // The partner answered its /healthz but not the re-synchronisation: try again, less often each time.
      this.whenReachable(domain, entry.reason, entry.failures + 1);
      return;
    }
    this.followUp(domain, report.spared.length > 0, report.graceMs);
  }

  /** Records the partner spared as too recent are looked at again once they are old enough (a few times in a row at most). */
  private followUp(domain: string, spared: boolean, graceMs: number): void {
    const n = this.followUps.get(domain) ?? 0;
    if (!spared || n >= this.opts.maxFollowUps) {
      this.followUps.delete(domain);
      return;
    }
    this.followUps.set(domain, n + 1);
    const timer = setTimeout(() => this.whenReachable(domain, 'records spared as recent'), graceMs + 100);
    timer.unref();
  }

  private run(domain: string, reason: string): Promise<ResyncReport> {
    const started = this.server.clock.now();
    const run = resyncPartner(this.server, domain, { reason, deadline: started + this.opts.runTimeoutMs, startUp: reason === START_UP })
      .then((report) => {
        const log = { partner: domain, reason, complete: report.complete, error: report.error, pages: report.pages, removed: report.removed.length, spared: report.spared.length, reasked: report.reasked.length, ms: this.server.clock.now() - started };
        if (report.complete) this.server.log.info(log, 'partner re-synchronised');
        else this.server.log.warn(log, 'partner re-synchronisation incomplete');
        return report;
      })
      .finally(() => this.running.delete(domain));
    this.running.set(domain, run);
    return run;
  }
}
