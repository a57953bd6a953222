import { quoteIdent } from '../sql/quote.js';
import type { IdentifyingValue, SearchColumn, SearchTable } from './types.js';

/**
 * One statement per table that checks every value in every searched column in a single pass.
 * Its WHERE is a cheap superset filter written so that an index can answer it when one exists:
 *
 *   text      col ILIKE ANY($substrings)   (a pg_trgm GIN/GiST index answers it)
 *             col = ANY($exact)            (a btree index on col answers it)
 *             lower(col) = ANY($emails)    (an index on lower(col) answers it)
 *   json(b)   col::text ILIKE ANY($jsonSubstrings)
 *             col @? $path                 (a jsonb_ops GIN index answers it: strict $.** ? (@ == v || ...))
 *   arrays    array_to_string(col, chr(31)) ILIKE ANY($substrings), col && $exact (GIN array_ops)
 *
 * Values are bound, never spliced: the patterns, the arrays and the jsonpath text are parameters.
 * The few rows that pass come back with the searched columns as text, and classify.ts decides
 * what matched how (a row the filter let through that nothing really matches counts for nothing).
 */
export interface ScanQuery {
  readonly text: string;
  readonly params: readonly (string | readonly string[])[];
  /** Output column of each searched column, in order; then k0.. for the key columns. */
  readonly columns: readonly SearchColumn[];
  /** The row's name: its primary key columns, or ctid. */
  readonly keyColumns: readonly string[];
}

export interface ValueSets {
  /** `%v%` patterns, LIKE-escaped, for values also searched as substrings. */
  readonly substrings: readonly string[];
  /** The same for JSON text, with the value escaped as JSON writes it inside a string. */
  readonly jsonSubstrings: readonly string[];
  /** Values matched exactly only (short ones, numbers) */
  readonly exact: readonly string[];
  /** Lowercased emails not searched as substrings (--no-substring). */
  readonly emails: readonly string[];
  /** strict $.** ? (@ == ...) over exact and emails; null when both are empty. */
  readonly jsonPath: string | null;
}

export function valueSets(values: readonly IdentifyingValue[]): ValueSets {
  const like = (v: string) => `%${v.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
  const sub = values.filter((v) => v.substring);
  const exact = values.filter((v) => !v.substring).map((v) => v.value);
  const emails = [...new Set(values.filter((v) => !v.substring && v.email).map((v) => v.value.toLowerCase()))];
  const literals = [...new Set([...exact, ...emails])].flatMap((v) => [JSON.stringify(v), ...(/^-?\d+(\.\d+)?$/.test(v) && Number.isFinite(Number(v)) ? [v.replace(/^(-?)0+(?=\d)/, '$1')] : [])]);
  return {
    substrings: sub.map((v) => like(v.value)),
    jsonSubstrings: sub.map((v) => like(JSON.stringify(v.value).slice(1, -1))),
    exact,
    emails,
    jsonPath: literals.length ? `strict $.** ? (${literals.map((l) => `@ == ${l}`).join(' || ')})` : null,
  };
}

export function scanQuery(table: SearchTable, columns: readonly SearchColumn[], sets: ValueSets): ScanQuery {
  const params: (string | readonly string[])[] = [];
  const slots = new Map<string, string>();
  const bind = (name: keyof ValueSets, type: string) => {
    if (!slots.has(name)) {
      params.push(sets[name] as string | readonly string[]);
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
  switch (c.kind) {
    case 'text': {
      const x = c.plain ? col : `${col}::text`;
      if (sets.substrings.length) arms.push(`${x} ILIKE ANY(${bind('substrings', 'text[]')})`);
      if (sets.exact.length) arms.push(`${x} = ANY(${bind('exact', 'text[]')})`);
      if (sets.emails.length) arms.push(`lower(${x}) = ANY(${bind('emails', 'text[]')})`);
      return arms;
    }
    case 'json':
    case 'jsonb': {
      if (sets.jsonSubstrings.length) arms.push(`${col}::text ILIKE ANY(${bind('jsonSubstrings', 'text[]')})`);
      if (sets.jsonPath) arms.push(`${c.kind === 'jsonb' && c.plain ? col : `${col}::jsonb`} @? ${bind('jsonPath', 'jsonpath')}`);
      return arms;
    }
    case 'array': {
      if (sets.substrings.length) arms.push(`array_to_string(${col}, chr(31)) ILIKE ANY(${bind('substrings', 'text[]')})`);
      if (sets.exact.length) arms.push(`${col}::text[] && ${bind('exact', 'text[]')}`);
      if (sets.emails.length) arms.push(`EXISTS (SELECT FROM unnest(${col}::text[]) AS e WHERE lower(e) = ANY(${bind('emails', 'text[]')}))`);
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
