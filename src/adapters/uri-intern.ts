// One copy of each ID string in the memory caches: a million profiles and their groups' member lists name the
// same few hundred thousand URIs millions of times, and JSON.parse makes a new string for every mention.
import type { McUri } from '../domain/ids.ts';
import type { UserProfile } from '../domain/profile.ts';
import type { GroupPolicy } from '../domain/group-policy.ts';

export class UriIntern {
  private readonly table = new Map<string, McUri>();
  private readonly lists = new Map<string, readonly string[]>();

  uri(id: McUri): McUri {
    const known = this.table.get(id);
    if (known) return known;
    this.table.set(id, id);
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
    p.id = this.uri(p.id);
    p.services = this.list(p.services);
    p.groups = p.groups.map((g) => this.uri(g));
    return p;
  }

  group(g: GroupPolicy): GroupPolicy {
    g.id = this.uri(g.id);
    g.services = this.list(g.services);
    g.members = g.members.map((m) => this.uri(m));
    return g;
  }
}

/** The process's one table: profiles and group policies share the user and group ID strings. */
export const uriIntern = new UriIntern();
