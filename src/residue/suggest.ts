import { scalar } from '../discover/yaml.js';
import type { Subject } from '../policy.js';
import { quoteIdent, quoteLiteral } from '../sql/quote.js';
import type { IdentifyingValue, MatchKind, SearchColumn } from './types.js';

/**
 * A policy step that finds a finding's rows from :subject, written as purgekit discover writes
 * steps (`- table: x` / `  where: ...`), for a person to review, not to paste blindly: a
 * substring match may be a log line that only mentions the person.
 */
export interface SuggestionInput {
  /** The table as the policy would write it: bare in the policy's schema, else schema.name. */
  readonly table: string;
  readonly column: SearchColumn;
  readonly kind: MatchKind;
  readonly path: readonly (string | number)[] | null;
  readonly value: IdentifyingValue;
  readonly subject: Subject;
  /** The subject table as the policy would write it. */
  readonly subjectTable: string;
}

export function suggestStep(s: SuggestionInput): string {
  return `- table: ${scalar(s.table)}\n  where: ${scalar(condition(s))}`;
}

function condition(s: SuggestionInput): string {
  const col = quoteIdent(s.column.name);
  const text = s.column.kind === 'text' && s.column.plain ? col : `${col}::text`;
  // Compared ignoring case: what the scan matched so (emails, substrings), both sides lowercased.
  const ci = s.kind === 'case-insensitive' || s.kind === 'substring' || (s.value.email && (s.kind === 'json' || s.kind === 'array-element'));
  const values = valuesOf(s, ci);
  switch (s.kind) {
    case 'exact':
      return `${text} IN (${values})`;
    case 'case-insensitive':
      return `lower(${text}) IN (${values})`;
    case 'array-element':
      return ci ? `EXISTS (SELECT FROM unnest(${col}::text[]) AS e WHERE lower(e) IN (${values}))` : `${col}::text[] && ARRAY(${values})`;
    case 'json':
      return jsonCondition(s, values, ci);
    case 'substring':
      return `EXISTS (SELECT FROM (${values}) AS v (x) WHERE strpos(lower(${text}), v.x) > 0)`;
  }
}

/** A subquery of the values as text (lowercased when `lower`), read from :subject while the subject rows still exist. */
function valuesOf(s: SuggestionInput, lower: boolean): string {
  const wrap = (x: string) => (lower ? `lower(${x})` : x);
  const key = quoteIdent(s.subject.key);
  switch (s.value.source) {
    case 'key':
      return `SELECT ${wrap(`s.${key}::text`)} FROM :subject AS s`;
    case 'identifier':
      return `SELECT ${wrap(`t.${quoteIdent(s.value.column)}::text`)} FROM ${s.subjectTable} AS t WHERE t.${key} IN :subject`;
    case 'param':
      return `SELECT ${wrap(`:${s.value.column}`)}`;
  }
}

function jsonCondition(s: SuggestionInput, values: string, ci: boolean): string {
  const col = quoteIdent(s.column.name);
  const path = s.path ?? [];
  const fold = (x: string) => (ci ? `lower(${x})` : x);
  if (path.every((p) => typeof p === 'string')) {
    const keys = path as string[];
    const read = keys.length ? `${col}${keys.slice(0, -1).map((k) => `->${quoteLiteral(k)}`).join('')}->>${quoteLiteral(keys.at(-1)!)}` : `${col} #>> '{}'`;
    return `${fold(read)} IN (${values})`;
  }
  const jsonpath = `strict $${path.map((p) => (typeof p === 'number' ? '[*]' : `.${JSON.stringify(p)}`)).join('')}`;
  const doc = s.column.kind === 'jsonb' ? col : `${col}::jsonb`;
  return `EXISTS (SELECT FROM jsonb_path_query(${doc}, ${quoteLiteral(jsonpath)}) AS j WHERE ${fold(`j #>> '{}'`)} IN (${values}))`;
}
