// RFC 3261 §17 and Table 4 (Appendix A): every SIP timer in one table (SIP.js core/timers.ts habit).

export const T1 = 500;
export const T2 = 4000;
export const T4 = 5000;

export const TIMERS = {
  /** Timer E: non-INVITE request retransmit interval, UDP only; starts at T1, doubles up to T2. */
  E: T1,
  /** Timer F: non-INVITE transaction timeout. */
  F: 64 * T1,
  /** Timer J: wait time for non-INVITE request retransmits; 64*T1 for UDP, 0 for reliable transports. */
  J: (reliable: boolean): number => (reliable ? 0 : 64 * T1),
  /** Timer K: wait time for response retransmits; T4 for UDP, 0 for reliable transports. */
  K: (reliable: boolean): number => (reliable ? 0 : T4),
} as const;
