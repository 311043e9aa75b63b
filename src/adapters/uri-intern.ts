// One copy of each ID string in the memory caches: a million profiles and their groups' member lists name the
// same few hundred thousand URIs millions of times, and JSON.parse makes a new string for every mention.
import type { McUri } from '../domain/ids.ts';
import type { UserProfile } from '../domain/profile.ts';
import type { GroupPolicy } from '../domain/group-policy.ts';

export class UriIntern {
  /**
   * User IDs and group IDs apart: a profile's groups are looked up among 100,000 group IDs instead of among 1,100,000
   * IDs, which stays in the processor's caches (the look-ups were half of bench 3's start-up at a million users).
   */
  private readonly users = new Map<string, McUri>();
  private readonly groups = new Map<string, McUri>();
  private readonly lists = new Map<string, readonly string[]>();

  private static shared(table: Map<string, McUri>, id: McUri): McUri {
    const known = table.get(id);
    if (known) return known;
    table.set(id, id);
    return id;
  }

  /** Short lists that repeat (a profile's services) are shared, frozen, between profiles. */
  list<T extends string>(values: T[]): T[] {
    const key = values.join(' ');
    const known = this.lists.get(key);
    if (known) return known as T[];
    const frozen = Object.freeze([...values]);
    this.lists.set(key, frozen);
    return frozen as T[];
  }

  profile(p: UserProfile): UserProfile {
    p.id = UriIntern.shared(this.users, p.id);
    p.services = this.list(p.services);
    p.groups = p.groups.map((g) => UriIntern.shared(this.groups, g));
    return p;
  }

  group(g: GroupPolicy): GroupPolicy {
    g.id = UriIntern.shared(this.groups, g.id);
    g.services = this.list(g.services);
    g.members = g.members.map((m) => UriIntern.shared(this.users, m));
    return g;
  }
}

/** The process's one table: profiles and group policies share the user and group ID strings. */
export const uriIntern = new UriIntern();
