// TS 23.280 10.X.5.1.2 step 5 as TS 24.379 §9.2.1.5 carries it over SIP: client 2 answers a negotiated change by
// publishing its new set of groups. Each waiting change that the set fulfils is answered `accepted` (and applied
// by answerChange, so its result says what came of each group) once the publication stands: its set and its
// publication stored. Applied after the set, the change finds its groups as it asked and changes nothing (answered
// from the current state); a PUBLISH answered with an error answers no change, so its undo has none to take back.
// Each change is answered on its own: one whose answer fails leaves the others answered, and is reported after them.
import type { McUri } from '../domain/ids.ts';
import type { McService } from '../domain/services.ts';
import type { GroupStatus } from '../domain/flows.ts';
import { MusterError } from '../domain/errors.ts';
import { changesAcceptedByPublication } from '../domain/decisions/change-accepted-by-publication.ts';
import type { McServiceServer } from './context.ts';
import { answerChange } from './remote-change-negotiated.ts';

/** What a publication answered: each accepted change as answerChange answers it, and each whose answer failed. */
export interface PublicationAnswers {
  accepted: { id: string; state: 'accepted'; status: GroupStatus[] }[];
  /** Not a lost race: the store failed. Left `asked` it times out; stored `accepted` without a result, the expiry round finishes it. */
  failed: { id: string; error: unknown }[];
}

/** The change requests this publication answered; called only once the PUBLISH stands. */
export async function acceptChangesByPublication(server: McServiceServer, target: McUri, service: McService, published: readonly McUri[]): Promise<PublicationAnswers> {
  // Step 4 happened at client 2 (its user said yes); these are the requests still waiting for that answer.
  const waiting = (await server.store.changesInState('asked', target)).filter((c) => c.service === service && c.mode === 'negotiated');
  const answers: PublicationAnswers = { accepted: [], failed: [] };
  // One after another: each applies to the same user's groups, and one failing must not keep the next unanswered.
  for (const id of changesAcceptedByPublication(waiting, published)) {
    try {
      // Step 5: client 2's affiliation change response; answerChange applies it and wakes client 1's request (step 6).
      const answer = await answerChange(server, target, id, true);
      answers.accepted.push({ id, state: 'accepted', status: answer.status });
    } catch (e) {
      // The timeout or another answer won the race: the publication still stands as an ordinary one.
      if (!(e instanceof MusterError && e.code === 'conflict')) answers.failed.push({ id, error: e });
    }
  }
  return answers;
}
