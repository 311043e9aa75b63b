// User profiles served from memory (one lookup per request), written through to the store.
import type { McUri } from '../domain/ids.ts';
import type { UserProfile } from '../domain/profile.ts';
import { inForceEverywhere, type Announced } from '../ports/announcement.ts';
import type { Store } from '../ports/store.ts';
import type { UserProfiles } from '../procedures/context.ts';

export class UserProfileCache implements UserProfiles {
  private readonly profiles = new Map<McUri, UserProfile>();
  /** Other instances learn of a change through this (NATS when there are several): those that did not confirm it in time. */
  announce: (id: McUri, profile: UserProfile | undefined) => Promise<Announced> | Announced = () => inForceEverywhere;
  constructor(private readonly store: Store) {}

  /** Changes that arrive while load() reads: newer than what it read, so they are applied again after it. */
  private arrivedDuringLoad?: Map<McUri, UserProfile | undefined>;
  /** The load under way: a profile read again waits for it, so what it reads is newer than the load's. */
  private loading?: Promise<void>;
  /** The last read of each profile under way (reread): an older one's answer, or one read before a write here, is dropped. */
  private readonly rereads = new Map<McUri, number>();
  private rereadCount = 0;

  /** Reads every profile from the store, in place of what was cached (one deleted meanwhile goes too). */
  load(): Promise<void> {
    const loading = this.readAll().finally(() => {
      if (this.loading === loading) this.loading = undefined;
    });
    return (this.loading = loading);
  }

  private async readAll(): Promise<void> {
    const arrived = (this.arrivedDuringLoad ??= new Map<McUri, UserProfile | undefined>());
    try {
      // Interned by the store as it read them (row by row): interning again was 5,000,000 more table look-ups at a
      // million users, a quarter of bench 3's start-up.
      const stored = await this.store.allProfiles();
      this.profiles.clear();
      for (const p of stored) this.profiles.set(p.id, p);
      for (const [id, p] of arrived) this.apply(id, p);
    } finally {
      if (this.arrivedDuringLoad === arrived) this.arrivedDuringLoad = undefined;
    }
  }
  get size(): number {
    return this.profiles.size;
  }
  get(id: McUri): UserProfile | undefined {
    return this.profiles.get(id);
  }
  /** Stores and caches the profile; answers the live instances that had not confirmed it (none: in force everywhere). */
  async put(profile: UserProfile): Promise<Announced> {
    await this.store.putProfile(profile);
    this.rereads.delete(profile.id); // a read under way began before this write: its answer is older
    this.apply(profile.id, profile);
    return this.announce(profile.id, profile);
  }
  async delete(id: McUri): Promise<boolean> {
    return (await this.deleteAnnounced(id)).existed;
  }
  /** delete, and the live instances that had not confirmed the deletion when it was answered. */
  async deleteAnnounced(id: McUri): Promise<{ existed: boolean } & Announced> {
    const existed = await this.store.deleteProfile(id);
    this.rereads.delete(id);
    this.apply(id, undefined);
    return { existed, ...(await this.announce(id, undefined)) };
  }
  /**
   * Another instance stored or deleted this profile: it is read from the store, not taken from the message, so two
   * changes of one profile at two instances end the same everywhere (announcements can arrive in either order; the
   * store holds the one committed last). Of reads of one profile that overlap, the last begun is applied.
   */
  async reread(id: McUri): Promise<void> {
    await this.loading;
    const mine = ++this.rereadCount;
    this.rereads.set(id, mine);
    const stored = await this.store.profile(id);
    if (this.rereads.get(id) !== mine) return;
    this.rereads.delete(id);
    this.apply(id, stored);
  }

  /** Another instance stored this profile (or deleted it, when undefined): take it into the cache. */
  apply(id: McUri, profile: UserProfile | undefined): void {
    this.arrivedDuringLoad?.set(id, profile);
    if (profile) this.profiles.set(id, profile);
    else this.profiles.delete(id);
  }
}
