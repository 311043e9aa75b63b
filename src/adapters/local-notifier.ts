// Live delivery of stored client events inside one process (NATS carries them between instances).
import { EventEmitter } from 'node:events';
import type { McUri } from '../domain/ids.ts';
import type { Notifier } from '../ports/notifier.ts';
import type { ClientEvent } from '../ports/store.ts';
import type { GroupStatus } from '../domain/flows.ts';
import { groupsTouchedBy } from '../domain/decisions/group-watch.ts';

export class LocalNotifier implements Notifier {
  private readonly emitter = new EventEmitter();
  /** Separate from the users' channels: a group's URI and a user's could otherwise meet in one emitter. */
  private readonly groups = new EventEmitter();
  constructor() {
    this.emitter.setMaxListeners(0);
    this.groups.setMaxListeners(0);
  }
  publish(events: ClientEvent[]): void {
    for (const e of events) {
      this.emitter.emit(e.userId, e);
      if (e.type !== 'affiliation-status' || this.groups.eventNames().length === 0) continue;
      for (const g of groupsTouchedBy((e.data as { status?: GroupStatus[] }).status ?? [])) this.groups.emit(g, e);
    }
  }
  subscribeGroup(groupId: McUri, listener: (event: ClientEvent) => void): () => void {
    this.groups.on(groupId, listener);
    return () => this.groups.off(groupId, listener);
  }
  subscribe(userId: McUri, listener: (event: ClientEvent) => void): () => void {
    this.emitter.on(userId, listener);
    return () => this.emitter.off(userId, listener);
  }
}
