// Two operators change one user's profile at two instances at about the same time: the announcements can reach
// the instances in either order, but every instance must end with the profile the store holds (the one committed
// last), not with whichever announcement arrived last. Two real instances (McSystem) on a fresh PostgreSQL database
// and a NATS server of the test's own (test/support/fabric-instances.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Announced } from '../../src/ports/announcement.ts';
import type { UserProfile } from '../../src/domain/profile.ts';
import { deferred } from '../support/two-instances.ts';
import { alice, north, patrol, twoInstances } from '../support/fabric-instances.ts';

const profile = (n2: number): UserProfile => ({ id: alice, services: ['mcptt'], n2, groups: [patrol, north], remoteChange: false });

void test("A's announcement of an older profile reaches B after B stored a newer one: B keeps the newer, as stored", { timeout: 60_000 }, async () => {
  await twoInstances(async ({ a, b }) => {
    // A stores n2 = 1 first, but its announcement is held until B has stored n2 = 2 and announced it.
    const written = deferred();
    const open = deferred();
    const announce = a.profiles.announce.bind(a.profiles);
    a.profiles.announce = async (id, p): Promise<Announced> => {
      written.resolve(); // announced once stored: A's write is committed before B's
      await open.promise;
      return announce(id, p);
    };
    const byA = a.profiles.put(profile(1));
    await written.promise;
    assert.equal((await a.server.store.profile(alice))?.n2, 1);
    await b.profiles.put(profile(2)); // B's announcement reaches A once A's instance confirmed it
    assert.equal((await a.server.store.profile(alice))?.n2, 2, 'the store holds the one committed last');
    open.resolve();
    await byA; // A's announcement of n2 = 1 is in force at B: B has handled it

    assert.equal(b.profiles.get(alice)?.n2, 2, "B keeps the profile the store holds, not A's late announcement");
    assert.equal(a.profiles.get(alice)?.n2, 2, 'A took B’s change');
  });
});
