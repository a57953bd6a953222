import type { AuthorSql, PlanNode, SourcePath } from '../plan/nodes.js';

/**
 * A PostgreSQL error's `position` (1-based, in characters of the statement the server was sent)
 * mapped back to the author's SQL: which fragment of the node it falls in, where that fragment
 * sits in the policy (its YAML path), and the offset in the text the author wrote. Pure and
 * parser-free: the runner calls it only when a statement failed. load/position.ts turns the
 * result into file:line:col.
 */
export interface AuthorPosition {
  readonly source: SourcePath;
  /** The author's text, as the policy holds it. */
  readonly text: string;
  /** 0-based character offset into `text`. */
  readonly offset: number;
}

interface Fragment {
  readonly sql: AuthorSql;
  readonly source: SourcePath;
}

const preserveSource = (rule: number): SourcePath => ['preserve', rule - 1, 'where'];

/** The author SQL a node's statement can hold, with its place in the policy. */
export function authorFragments(node: PlanNode): readonly Fragment[] {
  switch (node.kind) {
    case 'lookup':
    case 'set-fill':
      return [{ sql: node.where, source: node.source }];
    case 'set-table':
      return [{ sql: node.where, source: ['sets', node.name, 'where'] }];
    case 'expect':
      return [{ sql: node.query, source: node.source }];
    case 'preserve':
      return [{ sql: node.condition.where, source: node.source }];
    case 'preserve-check':
      return [{ sql: node.condition.where, source: preserveSource(node.rule) }];
    case 'subject-guard':
      return node.preserved.map((p) => ({ sql: p.where, source: preserveSource(p.rule) }));
    case 'step':
      return [...(node.where ? [{ sql: node.where, source: node.source }] : []), ...node.keep.map((k) => ({ sql: k.where, source: preserveSource(k.rule) }))];
    default:
      // Nodes without author SQL (setup, guards, the wipe, the report, ...).
      return [];
  }
}

/** Where `position` of `statement` falls in the author SQL of `node`, if it falls in any. */
export function authorPosition(node: PlanNode, statement: string, position: number): AuthorPosition | undefined {
  const at = utf16Index(statement, position - 1);
  for (const fragment of authorFragments(node)) {
    const sql = fragment.sql.sql;
    for (let start = statement.indexOf(firstWord(sql)); start >= 0; start = statement.indexOf(firstWord(sql), start + 1)) {
      const k = alignedOffset(statement, start, sql, at);
      if (k !== undefined) return { source: fragment.source, text: fragment.sql.text, offset: authorOffset(fragment.sql, k) };
    }
  }
  return undefined;
}

function firstWord(sql: string): string {
  return sql.trimStart().split(/\s/, 1)[0] || sql;
}

/** The server counts characters (code points); JavaScript indexes UTF-16 code units. */
function utf16Index(text: string, codePoints: number): number {
  let i = 0;
  for (let n = 0; n < codePoints && i < text.length; n++) i += (text.codePointAt(i) ?? 0) > 0xffff ? 2 : 1;
  return i;
}

const isSpace = (c: string | undefined) => c === ' ' || c === '\t' || c === '\n' || c === '\r';

/**
 * The printer lays a multi-line fragment out under its statement (continuation lines indented),
 * so the fragment is matched with any run of whitespace standing for any other. If `sql` starts
 * at `start` of the statement and covers index `at`, the offset in `sql` that `at` is.
 */
function alignedOffset(statement: string, start: number, sql: string, at: number): number | undefined {
  let s = start;
  let k = 0;
  let found: number | undefined;
  while (k < sql.length) {
    if (s === at) found = k;
    if (isSpace(sql[k]) && isSpace(statement[s])) {
      while (isSpace(sql[k])) k++;
      while (isSpace(statement[s])) {
        if (s === at) found = k;
        s++;
      }
      continue;
    }
    if (sql[k] !== statement[s]) return undefined;
    k++;
    s++;
  }
  return found;
}

const REF = /^[a-z][a-z0-9_]*/;

/**
 * An offset in the resolved SQL -> one in the author's text. They agree character for character
 * except where the author wrote a :reference, which the compiler replaced by a parenthesized read
 * of the script's own tables ((TABLE pg_temp...), (SELECT ... FROM pg_temp...)): an offset
 * inside one maps to its ':'.
 */
export function authorOffset(fragment: Pick<AuthorSql, 'sql' | 'text'>, offset: number): number {
  const { sql, text } = fragment;
  let i = 0;
  let j = 0;
  while (j < offset && i < text.length && j < sql.length) {
    if (text[i] === sql[j]) {
      i++;
      j++;
      continue;
    }
    const ref = text[i] === ':' && sql[j] === '(' ? REF.exec(text.slice(i + 1)) : null;
    if (!ref) return i;
    // Skip the replacement: its parentheses balance (it holds no string literal).
    const refStart = i;
    let depth = 0;
    do {
      if (sql[j] === '(') depth++;
      else if (sql[j] === ')') depth--;
      j++;
    } while (depth > 0 && j < sql.length);
    if (j > offset) return refStart;
    i += 1 + ref[0].length;
  }
  return i;
}
