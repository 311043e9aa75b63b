// Live delivery of stored client events inside one process (NATS carries them between instances).
import { EventEmitter } from 'node:events';
import type { McUri } from '../domain/ids.ts';
import type { Notifier } from '../ports/notifier.ts';
import type { ClientEvent } from '../ports/store.ts';

export class LocalNotifier implements Notifier {
  private readonly emitter = new EventEmitter();
  constructor() {
    this.emitter.setMaxListeners(0);
  }
  publish(events: ClientEvent[]): void {
    for (const e of events) this.emitter.emit(e.userId, e);
  }
  subscribe(userId: McUri, listener: (event: ClientEvent) => void): () => void {
    this.emitter.on(userId, listener);
    return () => this.emitter.off(userId, listener);
  }
}
