import type { TableName } from '../policy.js';
import { quoteIdent } from '../sql/quote.js';

/**
 * How names are written: in SQL, in messages and in the report (schema.name, quoted only where
 * SQL needs it, so the same text is valid SQL and readable), and on the command line.
 */
export function qualified(t: TableName): string {
  return `${quoteIdent(t.schema)}.${quoteIdent(t.name)}`;
}

/** A param's command-line spelling: max_rows -> max-rows. */
export function kebab(name: string): string {
  return name.replaceAll('_', '-');
}

/** The word for n things: plural(1, 'row') is row, plural(2, 'row') rows. */
export function plural(n: number, word: string, words = `${word}s`): string {
  return n === 1 ? word : words;
}

/** Text on one line, whitespace runs collapsed: author SQL quoted in a message. */
export function oneLine(text: string): string {
  return text.replace(/\s+/g, ' ').trim();
}
