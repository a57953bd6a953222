import { RefusedError } from '../core/errors.js';
import type { Guard } from '../policy.js';

/** guard.databases: shell-style globs (* and ?) on current_database(). */
export function databaseAllowed(guard: Guard, database: string): boolean {
  if (!guard.databases) return true;
  return guard.databases.some((glob) => new RegExp(`^${glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replaceAll('*', '.*').replaceAll('?', '.')}$`).test(database));
}

export function checkDatabase(guard: Guard, database: string): void {
  if (!databaseAllowed(guard, database)) {
    throw new RefusedError(`database "${database}" is not allowed by this policy's guard (databases: ${guard.databases!.join(', ')})`);
  }
}

/**
 * apply changes data, so it needs --confirm; with guard.confirm: database the value must be the
 * database's name, typed at a terminal when --confirm has no value and stdin is a TTY.
 * With guard.confirm: subject, the subjects' display values (typed at a terminal, or
 * --confirm-subject) stand for --confirm; they are checked against the matched subjects inside
 * the run's transaction (src/run/confirmSubject.ts), here only that they were given.
 */
export async function checkConfirmation(
  guard: Guard,
  database: string,
  confirm: string | undefined,
  ask: ((question: string) => Promise<string>) | undefined,
  confirmSubject: readonly string[] = [],
): Promise<void> {
  if (guard.confirmSubject && confirmSubject.length === 0) {
    throw new RefusedError('this policy confirms the subject by name: give --confirm-subject <value> once per matched subject (purgekit plan shows them), or run apply at a terminal and type it');
  }
  if (confirm === undefined && guard.confirmSubject && guard.confirm !== 'database') return;
  if (confirm === undefined && guard.confirmSubject) throw new RefusedError(`this policy confirms the database too: add --confirm ${database}`);
  if (confirm === undefined) throw new RefusedError('apply changes data: add --confirm (run purgekit plan first to see what it would do)');
  if (guard.confirm !== 'database') return;
  let typed = confirm;
  if (typed === '' && ask) typed = (await ask(`Type the name of the database to purge (${database}): `)).trim();
  if (typed === '') throw new RefusedError(`this policy needs --confirm ${database} (the database name), or --confirm typed at a terminal`);
  if (typed !== database) throw new RefusedError(`--confirm "${typed}" does not match the database "${database}"`);
}
