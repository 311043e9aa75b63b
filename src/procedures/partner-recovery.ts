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
  /** Cancels the timer of the next probe; none while the probe is under way. */
  cancel?: () => void;
}

export class PartnerRecovery {
  private readonly running = new Map<string, Promise<ResyncReport>>();
  /** An operator's run asked while one was running: it starts once that one ends, and later asks share it. */
  private readonly queued = new Map<string, Promise<ResyncReport>>();
  private readonly waiting = new Map<string, Waiting>();
  private readonly followUps = new Map<string, number>();
  /** Failed runs in a row per partner, counted where a run ends (a shared one once): the wait doubles with each. */
  private readonly failures = new Map<string, number>();
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

  /**
   * A partner that has just started sent its re-synchronisation: re-synchronise the other way too, now. A back-off
   * wait for it ends at once; its failures are kept, so a partner that fails again waits longer still, not in a loop.
   */
  partnerStarted(domain: string): void {
    if (!this.server.partners.domains().includes(domain)) return;
    this.whenReachable(domain, 'partner restarted');
    // A run already waiting keeps its reason (start-up); one probing now (no timer) runs anyway.
    const w = this.waiting.get(domain);
    if (!w?.cancel) return;
    w.cancel();
    this.schedule(domain, w, 0);
  }

  stop(): void {
    this.stopped = true;
    for (const w of this.waiting.values()) w.cancel?.();
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
  whenReachable(domain: string, reason: string): void {
    if (this.stopped || this.waiting.has(domain)) return;
    const entry: Waiting = { reason };
    this.waiting.set(domain, entry);
    this.schedule(domain, entry, this.backOff(domain, 0));
  }

  /** The wait before the next probe: `none` while no run failed, then doubling with each failed run in a row, up to the longest. */
  private backOff(domain: string, none: number): number {
    const failed = this.failures.get(domain) ?? 0;
    return failed === 0 ? none : Math.min(this.opts.probeEveryMs * 2 ** failed, this.opts.maxProbeEveryMs);
  }

  private schedule(domain: string, entry: Waiting, delay: number): void {
    entry.cancel = this.server.clock.after(delay, () => {
      entry.cancel = undefined;
      void this.probe(domain, entry);
    });
  }

  private async probe(domain: string, entry: Waiting): Promise<void> {
    if (this.stopped || this.waiting.get(domain) !== entry) return;
    const reachable = await this.server.partners.reachable(domain);
    if (this.stopped || this.waiting.get(domain) !== entry) return;
    if (!reachable) {
      this.schedule(domain, entry, this.backOff(domain, this.opts.probeEveryMs));
      return;
    }
    this.waiting.delete(domain);
    // A run already under way may have read its pages before the trouble: this one starts after it.
    const report = await this.resync(domain, entry.reason).catch((err: unknown) => ({ complete: false, error: String(err), spared: [], graceMs: 0 }));
    if (!report.complete) {
      // The partner answered its /healthz but not the re-synchronisation: try again, less often each time.
      this.whenReachable(domain, entry.reason);
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
    this.server.clock.after(graceMs + 100, () => this.whenReachable(domain, 'records spared as recent'));
  }

  private counted(domain: string, complete: boolean): void {
    if (complete) this.failures.delete(domain);
    else this.failures.set(domain, (this.failures.get(domain) ?? 0) + 1);
  }

  private run(domain: string, reason: string): Promise<ResyncReport> {
    const started = this.server.clock.now();
    const run = resyncPartner(this.server, domain, { reason, deadline: started + this.opts.runTimeoutMs, startUp: reason === START_UP })
      .then(
        (report) => {
          this.counted(domain, report.complete);
          const log = { partner: domain, reason, complete: report.complete, error: report.error, pages: report.pages, removed: report.removed.length, spared: report.spared.length, reasked: report.reasked.length, ms: this.server.clock.now() - started };
          if (report.complete) this.server.log.info(log, 'partner re-synchronised');
          // A relay loop is the operator's to fix (the partners' `via` routes): an error, tried again on the back-off only.
          else if (report.fault === 'loop-detected') this.server.log.error({ ...log, fault: report.fault }, "partner re-synchronisation incomplete: a relay loop on the way to the partner, a configuration error of the partners' `via` routes; tried again on the back-off");
          else this.server.log.warn(log, 'partner re-synchronisation incomplete');
          return report;
        },
        (err: unknown) => {
          this.counted(domain, false);
          throw err;
        },
      )
      .finally(() => this.running.delete(domain));
    this.running.set(domain, run);
    return run;
  }
}
