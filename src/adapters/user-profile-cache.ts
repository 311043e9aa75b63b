// User profiles served from memory (one lookup per request), written through to the store.
import type { McUri } from '../domain/ids.ts';
import type { UserProfile } from '../domain/profile.ts';
import type { Store } from '../ports/store.ts';
import type { UserProfiles } from '../procedures/context.ts';

export class UserProfileCache implements UserProfiles {
  private readonly profiles = new Map<McUri, UserProfile>();
  constructor(private readonly store: Store) {}

  async load(): Promise<void> {
    for (const p of await this.store.allProfiles()) this.profiles.set(p.id, p);
  }
  get size(): number {
    return this.profiles.size;
  }
  get(id: McUri): UserProfile | undefined {
    return this.profiles.get(id);
  }
  async put(profile: UserProfile): Promise<void> {
    await this.store.putProfile(profile);
    this.profiles.set(profile.id, profile);
  }
  async delete(id: McUri): Promise<boolean> {
    const existed = await this.store.deleteProfile(id);
    this.profiles.delete(id);
    return existed;
  }
  /** Another instance changed a profile: read it again from the store. */
  async refresh(): Promise<void> {
    this.profiles.clear();
    await this.load();
  }
}
