// What an operator's change announced to the other instances of one system left not in force there (README
// "Several instances on PostgreSQL and NATS"): the faces answer 202 with it rather than report the change done.

export interface Announced {
  /** The live instances that have not confirmed the change (none: in force at every instance). */
  notConfirmed: readonly string[];
  /** Set when the fabric itself could not carry the change (this instance cut off from NATS, or its connection closed): why, and what follows. */
  untold?: string;
}

/** A system of one instance, or a change every live instance confirmed. */
export const inForceEverywhere: Announced = { notConfirmed: [] };
