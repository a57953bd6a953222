import type { PathSegment } from '../load/loadPolicy.js';
import type { Guard } from '../policy.js';

/**
 * guard.confirm (database, subject, or a list of both) and the subject keys it goes with:
 * subject.display (the column typed to confirm a subject) and subject.search (the columns the
 * interactive pick searches). The schema has checked their shapes; this checks how they fit.
 */
type Raw = Record<string, unknown>;
type Report = (path: readonly PathSegment[], message: string, key?: boolean) => void;

const isObject = (v: unknown): v is Raw => typeof v === 'object' && v !== null && !Array.isArray(v);

/** subject.display and subject.search, as the Subject carries them. */
export function subjectConfirmKeys(subject: Raw, checkIdentifier: (path: readonly PathSegment[], name: string) => void): { display?: string; search?: readonly string[] } {
  const display = typeof subject['display'] === 'string' ? subject['display'] : undefined;
  if (display !== undefined) checkIdentifier(['subject', 'display'], display);
  const search = Array.isArray(subject['search']) ? subject['search'].filter((c): c is string => typeof c === 'string') : undefined;
  search?.forEach((c, i) => checkIdentifier(['subject', 'search', i], c));
  return { ...(display !== undefined ? { display } : {}), ...(search?.length ? { search } : {}) };
}

/** guard.confirm as the Guard carries it: confirm: 'database' and/or confirmSubject. */
export function guardConfirm(raw: Raw, report: Report): Pick<Guard, 'confirm' | 'confirmSubject'> {
  const guard = isObject(raw['guard']) ? raw['guard'] : {};
  const value = guard['confirm'];
  const names = Array.isArray(value) ? value : value === undefined ? [] : [value];
  const subject = names.includes('subject');
  if (subject) {
    const s = isObject(raw['subject']) ? raw['subject'] : undefined;
    if (raw['kind'] !== undefined && raw['kind'] !== 'purge') report(['guard', 'confirm'], `subject: only a purge policy has a subject to confirm (this one is kind: ${String(raw['kind'])})`);
    else if (s && typeof s['display'] !== 'string') report(['guard', 'confirm'], 'subject needs subject.display: the column whose value is shown for each matched subject and typed to confirm it (e.g. display: username)');
  }
  return { ...(names.includes('database') ? { confirm: 'database' as const } : {}), ...(subject ? { confirmSubject: true as const } : {}) };
}
