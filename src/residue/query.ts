import { quoteIdent } from '../sql/quote.js';
import type { IdentifyingValue, SearchColumn, SearchTable } from './types.js';

/**
 * One statement per table that checks every value in every searched column in a single pass.
 * Its WHERE is a cheap superset filter written so that an index can answer it when one exists,
 * and so that no row pays for lower() on its text (half the cost of the scan, measured: ILIKE
 * and lower() case-fold every character of every row):
 *
 *   text      col ILIKE ANY($substrings)         with a pg_trgm index on col (it answers that)
 *             col LIKE ANY($cased)               without: each value as found, as given and
 *                                                lowercased, matched byte for byte
 *             col = ANY($exact)                  (a btree index on col answers it)
 *             octet_length(col) = ANY($lengths) AND lower(col) = ANY($emails)
 *                                                an email in any case: lower() only for texts
 *                                                of an email's length (an index on lower(col)
 *                                                answers it)
 *   json(b)   col::text LIKE ANY($json)          when substrings are searched: the document's text
 *                                                once, every value as JSON writes it
 *             col @? $path                       otherwise (a jsonb_ops GIN index answers it:
 *                                                strict $.** ? (@ == v || ...))
 *   arrays    array_to_string(col, chr(31)) LIKE ANY($cased), col && $exact (GIN array_ops)
 *
 * Values are bound, never spliced: the patterns, the arrays and the jsonpath text are parameters.
 * The few rows that pass come back with the searched columns as text, and classify.ts decides
 * what matched how (a row the filter let through that nothing really matches counts for nothing).
 */
export interface ScanQuery {
  readonly text: string;
  readonly params: readonly (string | readonly string[] | readonly number[])[];
  /** Output column of each searched column, in order; then k0.. for the key columns. */
  readonly columns: readonly SearchColumn[];
  /** The row's name: its primary key columns, or ctid. */
  readonly keyColumns: readonly string[];
}

export interface ValueSets {
  /** `%v%` patterns, LIKE-escaped, for values also searched as substrings (for ILIKE). */
  readonly substrings: readonly string[];
  /** The same for LIKE: each value as it is and lowercased. */
  readonly cased: readonly string[];
  /** For a JSON document's text: every value (as it is and lowercased) as JSON writes it in a string. */
  readonly json: readonly string[];
  /** Values matched exactly only (short ones, numbers; all with --no-substring). */
  readonly exact: readonly string[];
  /** Every email, lowercased, and their lengths in bytes. */
  readonly emails: readonly string[];
  readonly lengths: readonly number[];
  /** strict $.** ? (@ == ...) over exact values and emails; null when both are empty. */
  readonly jsonPath: string | null;
}

export function valueSets(values: readonly IdentifyingValue[]): ValueSets {
  const like = (v: string) => `%${v.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
  const forms = (v: string) => [...new Set([v, v.toLowerCase()])];
  const sub = values.filter((v) => v.substring);
  const exact = values.filter((v) => !v.substring).map((v) => v.value);
  const emails = [...new Set(values.filter((v) => v.email).map((v) => v.value.toLowerCase()))];
  const literals = [...new Set([...exact, ...emails])].flatMap((v) => [JSON.stringify(v), ...(/^-?\d+(\.\d+)?$/.test(v) && Number.isFinite(Number(v)) ? [v.replace(/^(-?)0+(?=\d)/, '$1')] : [])]);
  return {
    substrings: sub.map((v) => like(v.value)),
    cased: [...new Set(sub.flatMap((v) => forms(v.value).map(like)))],
    json: sub.length ? [...new Set(values.flatMap((v) => forms(v.value).map((f) => like(JSON.stringify(f).slice(1, -1)))))] : [],
    exact,
    emails,
    lengths: [...new Set(emails.map((e) => Buffer.byteLength(e, 'utf8')))],
    jsonPath: literals.length ? `strict $.** ? (${literals.map((l) => `@ == ${l}`).join(' || ')})` : null,
  };
}

export function scanQuery(table: SearchTable, columns: readonly SearchColumn[], sets: ValueSets): ScanQuery {
  const params: (string | readonly string[] | readonly number[])[] = [];
  const slots = new Map<string, string>();
  const bind = (name: keyof ValueSets, type: string) => {
    if (!slots.has(name)) {
      params.push(sets[name] as string | readonly string[] | readonly number[]);
      slots.set(name, `$${params.length}::${type}`);
    }
    return slots.get(name)!;
  };
  const arms = columns.flatMap((c) => armsOf(c, sets, bind));
  const keyColumns = table.primaryKey.length ? table.primaryKey : ['ctid'];
  const keys = keyColumns.map((k, i) => `${k === 'ctid' && !table.primaryKey.length ? 'ctid' : quoteIdent(k)}::text AS k${i}`);
  const outputs = columns.map((c, i) => `${outputOf(c)} AS c${i}`);
  const text = [
    `SELECT ${[...keys, ...outputs].join(', ')}`,
    `FROM ${table.partitioned ? '' : 'ONLY '}${table.table}`,
    `WHERE ${arms.length ? arms.join('\n   OR ') : 'false'}`,
  ].join('\n');
  return { text, params, columns, keyColumns };
}

type Bind = (name: keyof ValueSets, type: string) => string;

function armsOf(c: SearchColumn, sets: ValueSets, bind: Bind): string[] {
  const col = quoteIdent(c.name);
  const arms: string[] = [];
  const email = (x: string) => `(octet_length(${x}) = ANY(${bind('lengths', 'int[]')}) AND lower(${x}) = ANY(${bind('emails', 'text[]')}))`;
  switch (c.kind) {
    case 'text': {
      const x = c.plain ? col : `${col}::text`;
      if (sets.substrings.length) arms.push(c.trigram ? `${x} ILIKE ANY(${bind('substrings', 'text[]')})` : `${x} LIKE ANY(${bind('cased', 'text[]')})`);
      if (sets.exact.length) arms.push(`${x} = ANY(${bind('exact', 'text[]')})`);
      // ILIKE already finds an email in any case (every email is searched as a substring then).
      if (sets.emails.length && !(c.trigram && sets.substrings.length)) arms.push(email(x));
      return arms;
    }
    case 'json':
    case 'jsonb': {
      // Substrings need the document's text anyway: every value is then looked for in it, once.
      if (sets.json.length) return [`${col}::text LIKE ANY(${bind('json', 'text[]')})`];
      if (sets.jsonPath) arms.push(`${c.kind === 'jsonb' && c.plain ? col : `${col}::jsonb`} @? ${bind('jsonPath', 'jsonpath')}`);
      return arms;
    }
    case 'array': {
      if (sets.cased.length) arms.push(`array_to_string(${col}, chr(31)) LIKE ANY(${bind('cased', 'text[]')})`);
      if (sets.exact.length) arms.push(`${col}::text[] && ${bind('exact', 'text[]')}`);
      if (sets.emails.length && !sets.cased.length) arms.push(`EXISTS (SELECT FROM unnest(${col}::text[]) AS e WHERE ${email('e')})`);
      return arms;
    }
  }
}

function outputOf(c: SearchColumn): string {
  const col = quoteIdent(c.name);
  switch (c.kind) {
    case 'text':
    case 'json':
    case 'jsonb':
      return `${col}::text`;
    case 'array':
      return `to_jsonb(${col}::text[])::text`;
  }
}
