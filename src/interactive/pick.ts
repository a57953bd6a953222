/**
 * The interactive pick (seed 001: "list users, select one"): at a terminal, apply with no lookup
 * parameter searches the subject table by the columns subject.search declares, lists what
 * matches (at most LIMIT, paged), and the operator chooses one. The choice becomes the values of
 * a lookup, so the run finds, locks and guards the subject exactly as from the command line.
 */
import type postgres from 'postgres';
import { UsageError } from '../core/errors.js';
import { kebab, qualified } from '../core/names.js';
import type { Policy, Subject } from '../policy.js';
import { quoteIdent } from '../sql/quote.js';
import { searchChoice, type Choice } from './prompts.js';

/** At most this many matches are listed: a term that finds more asks for more of it. */
export const LIMIT = 50;
const PAGE = 10;

type Row = Readonly<Record<string, unknown>>;

/** A search term as an ILIKE pattern that matches it anywhere, literally: % and _ (and \) are escaped. */
export function containsPattern(term: string): string {
  return `%${term.replace(/[\\%_]/g, '\\$&')}%`;
}

/** The query of a search: identifiers quoted, the pattern bound as $1 (never spliced). */
export function searchSql(subject: Subject, columns: readonly string[]): string {
  const order = [subject.display ?? columns[0]!, subject.key].map((c) => `s.${quoteIdent(c)}`).join(', ');
  const where = columns.map((c) => `s.${quoteIdent(c)}::text ILIKE $1 ESCAPE '\\'`).join(' OR ');
  return `SELECT to_jsonb(s) AS row FROM ${qualified(subject.table)} AS s WHERE ${where} ORDER BY ${order} LIMIT ${LIMIT + 1}`;
}

/**
 * The first lookup every parameter of which names a column of the subject table: the chosen
 * row's values fill it in (vedfolnir: by [username] -> the row's username).
 */
export function lookupByColumns(subject: Subject, columns: ReadonlySet<string>): readonly string[] | undefined {
  return subject.lookup.find((l) => l.by.every((b) => columns.has(b)))?.by;
}

/** The chosen row's values of the lookup's parameters, as command-line values (kebab-case keys). */
export function lookupValues(by: readonly string[], row: Row): Readonly<Record<string, string>> {
  return Object.fromEntries(by.map((b) => [kebab(b), typeof row[b] === 'string' ? (row[b] as string) : JSON.stringify(row[b])]));
}

function label(subject: Subject, columns: readonly string[], row: Row): string {
  const text = (v: unknown) => (v === null || v === undefined ? '-' : typeof v === 'string' ? v : JSON.stringify(v));
  const shown = [...new Set([subject.display, ...columns].filter((c): c is string => c !== undefined))];
  return `${shown.map((c) => text(row[c])).join('  ')}  (${subject.key} ${text(row[subject.key])})`;
}

/** Asks for a search term and a choice; returns the chosen subject's lookup values (kebab-case keys). */
export async function pickSubject(sql: postgres.Sql, policy: Policy, lookupChoices: string): Promise<Readonly<Record<string, string>>> {
  const subject = policy.subject!;
  const columns = subject.search;
  if (!columns) {
    throw new UsageError(`${policy.name} declares no subject.search: at a terminal, apply without ${lookupChoices} searches the subject table by the columns subject.search names (e.g. search: [username, email]); declare it, or give ${lookupChoices}`);
  }
  // Before anyone is asked anything: the columns exist, and a lookup can take the chosen row.
  const rows = await sql<{ name: string }[]>`SELECT attname::text AS name FROM pg_attribute WHERE attrelid = to_regclass(${qualified(subject.table)}) AND attnum > 0 AND NOT attisdropped`;
  const existing = new Set(rows.map((r) => r.name));
  const missing = columns.filter((c) => !existing.has(c));
  if (missing.length) throw new UsageError(`subject.search: ${qualified(subject.table)} has no column ${missing.join(', ')}`);
  const by = lookupByColumns(subject, existing);
  if (!by) {
    throw new UsageError(`subject.search: no lookup of ${policy.name} takes only columns of ${qualified(subject.table)}, so a chosen row cannot be looked up (give a lookup a parameter named like its column, e.g. by: [username]); give ${lookupChoices} instead`);
  }
  const query = searchSql(subject, columns);
  const choice = await searchChoice<Row>(
    `Search ${qualified(subject.table)} by ${columns.join(', ')}:`,
    async (term) => {
      const rows = await sql.unsafe<{ row: Row }[]>(query, [containsPattern(term)]);
      const choices: Choice<Row>[] = rows.slice(0, LIMIT).map(({ row }) => ({ value: row, name: label(subject, columns, row) }));
      return { choices, more: rows.length > LIMIT ? `(more than ${LIMIT} match: type more to narrow the search)` : undefined };
    },
    PAGE,
  );
  // A row without a value for the lookup (NULL) cannot be looked up by it: say so rather than guess.
  if (by.some((b) => choice[b] === null || choice[b] === undefined)) throw new UsageError(`the chosen ${qualified(subject.table)} row has no ${by.join(', ')}: give ${lookupChoices} instead`);
  return lookupValues(by, choice);
}
