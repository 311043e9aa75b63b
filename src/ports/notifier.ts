// Live delivery of stored client events to whichever event stream (SSE, SIP NOTIFY) the user holds open.
import type { McUri } from '../domain/ids.ts';
import type { ClientEvent } from './store.ts';

export interface Notifier {
  publish(events: ClientEvent[]): void;
  subscribe(userId: McUri, listener: (event: ClientEvent) => void): () => void;
  /** The `affiliation-status` events of any user that touch this group (`groupsTouchedBy`): its members may have changed. */
  subscribeGroup(groupId: McUri, listener: (event: ClientEvent) => void): () => void;
}
