// What crosses between instances of one MC system over the fabric: client events, settled change requests.
import type { McUri } from '../domain/ids.ts';
import type { Notifier } from '../ports/notifier.ts';
import type { ClientEvent, ChangeRecord } from '../ports/store.ts';
import type { ChangeOutcomes } from '../procedures/change-outcomes.ts';
import type { NatsFabric } from './nats-fabric.ts';

/** Events reach the user's event stream whichever instance holds it. */
export class FabricNotifier implements Notifier {
  constructor(
    private readonly local: Notifier,
    private readonly fabric: NatsFabric,
  ) {
    fabric.on('events', (data) => local.publish(data as ClientEvent[]));
  }
  publish(events: ClientEvent[]): void {
    if (events.length === 0) return;
    this.local.publish(events);
    this.fabric.publish('events', events);
  }
  subscribe(userId: McUri, listener: (event: ClientEvent) => void): () => void {
    return this.local.subscribe(userId, listener);
  }
  subscribeGroup(groupId: McUri, listener: (event: ClientEvent) => void): () => void {
    // Events from other instances reach `local.publish` too (above), so the group channel sees every instance's changes.
    return this.local.subscribeGroup(groupId, listener);
  }
}

/** A negotiated change answered (or timed out) at one instance completes the request waiting at another. */
export class FabricChangeOutcomes implements ChangeOutcomes {
  constructor(
    private readonly local: ChangeOutcomes,
    private readonly fabric: NatsFabric,
  ) {
    fabric.on('changes', (data) => local.settle(data as ChangeRecord));
  }
  wait(id: string, target: string): Promise<ChangeRecord> {
    return this.local.wait(id, target);
  }
  settle(record: ChangeRecord): void {
    this.local.settle(record);
    this.fabric.publish('changes', record);
  }
  forget(id: string, target: string): void {
    this.local.forget(id, target);
  }
}
