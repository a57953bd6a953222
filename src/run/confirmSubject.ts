import type postgres from 'postgres';
import { RefusedError } from '../core/errors.js';
import { qualified } from '../core/names.js';
import type { Policy, Subject } from '../policy.js';
import { quoteIdent } from '../sql/quote.js';
import type { RunMode } from './execute.js';

/**
 * guard.confirm: subject. The subject.display value of each matched subject is read inside the
 * run's own transaction, right after the subject is resolved, locked (FOR UPDATE) and guarded,
 * before the first delete: a dry run hands the values to the caller, to show the operator; an
 * apply compares them with the values the operator confirmed (typed, or --confirm-subject) and
 * refuses, rolling back, unless they are the same. So a subject whose display value changed
 * between the dry run and the apply is refused, not purged under a name nobody confirmed.
 *
 * The values are shown to the operator (stderr) only: messages, --json and the audit log never
 * carry them (a refusal says how many differ, not what they are).
 */

/** The display values of the matched subjects, in order; NULL for a subject that has none. */
export async function displayValues(tx: postgres.TransactionSql, subject: Subject & { readonly display: string }): Promise<(string | null)[]> {
  const rows = await tx.unsafe<{ v: string | null }[]>(
    `SELECT (${quoteIdent(subject.display)})::text AS v FROM ${qualified(subject.table)} WHERE ${quoteIdent(subject.key)} IN (TABLE pg_temp.purgekit_subject) ORDER BY 1`,
  );
  return rows.map((r) => r.v);
}

/**
 * Why the confirmed values do not confirm these subjects, or undefined when they do: one value
 * per subject, each exactly equal (no case folding, no trimming; a repeated display value is
 * given as often as it is shown).
 */
export function confirmationProblem(column: string, shown: readonly (string | null)[], given: readonly string[]): string | undefined {
  const what = `the ${column} of ${shown.length === 1 ? 'the matched subject' : `each of the ${shown.length} matched subjects`}`;
  if (shown.some((v) => v === null)) return `a matched subject has no ${column} (NULL): it cannot be confirmed by name`;
  if (given.length === 0) return `this policy needs ${what}: typed at a terminal, or --confirm-subject <${column}> once per subject`;
  if (given.length !== shown.length) {
    return `${shown.length} ${shown.length === 1 ? 'subject' : 'subjects'} matched and ${given.length} --confirm-subject ${given.length === 1 ? 'value was' : 'values were'} given: give ${what}, one per subject`;
  }
  const left = [...(shown as string[])];
  let wrong = 0;
  for (const value of given) {
    const at = left.indexOf(value);
    if (at < 0) wrong++;
    else left.splice(at, 1);
  }
  if (wrong === 0) return undefined;
  return `${wrong} of ${given.length} confirmed ${given.length === 1 ? 'value does' : 'values do'} not equal ${what} (exact match: case and spaces count)`;
}

export interface SubjectConfirmation {
  /** apply: what the operator confirmed (typed, or --confirm-subject). */
  readonly confirmSubject?: readonly string[];
  /** A dry run: receives the matched subjects' display values, to show the operator. */
  readonly onSubjects?: (display: readonly (string | null)[]) => void;
}

/** execute()'s subjectResolved hook for this policy and mode, if it has one. */
export function subjectControl(policy: Policy, mode: RunMode, options: SubjectConfirmation): { subjectResolved?: (tx: postgres.TransactionSql) => Promise<void> } {
  const subject = policy.subject;
  if (!policy.guard.confirmSubject || subject?.display === undefined) return {};
  const withDisplay = { ...subject, display: subject.display };
  if (mode === 'apply') {
    return {
      subjectResolved: async (tx) => {
        const problem = confirmationProblem(subject.display!, await displayValues(tx, withDisplay), options.confirmSubject ?? []);
        if (problem) throw new RefusedError(`guard.confirm: subject: ${problem}; rolled back, nothing was changed`);
      },
    };
  }
  const receive = options.onSubjects;
  return receive ? { subjectResolved: async (tx) => receive(await displayValues(tx, withDisplay)) } : {};
}

/**
 * For the audit log: which column was confirmed, and the confirmed values as the audit log's
 * HMACs (src/run/audit.ts pseudonymize), never in clear: the record says that a name was typed
 * and lets whoever holds the key check which one, as for personal params.
 */
export function confirmedForAudit(policy: Policy, confirmSubject: readonly string[] | undefined, pseudonymize: (value: string) => string): object {
  if (!policy.guard.confirmSubject || !confirmSubject?.length) return {};
  return { confirmedSubject: { column: policy.subject?.display ?? null, values: confirmSubject.map(pseudonymize) } };
}
