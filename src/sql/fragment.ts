import type { SqlFragment } from '../policy.js';
import { parse, scan, type Token } from './parser.js';

/**
 * Checks SQL the policy author wrote, with the real PostgreSQL parser, and splits it at its
 * :name references. A `where` must be exactly one boolean expression that stays one when the
 * compiler wraps it in parentheses and appends to it; a `query` must be exactly one SELECT that
 * changes nothing. Comments are refused outright: a trailing `--` would swallow what the compiler
 * appends, and YAML `#` comments serve the author just as well.
 */

export interface FragmentProblem {
  readonly message: string;
  /** 0-based character offset into the author's text. */
  readonly offset: number;
}

export type FragmentResult = { ok: true; fragment: SqlFragment } | { ok: false; problems: readonly FragmentProblem[] };

const REF = /^[a-z][a-z0-9_]*$/;

export function checkWhere(text: string): FragmentResult {
  return check(text, 'where');
}

export function checkQuery(text: string): FragmentResult {
  return check(text, 'query');
}

function check(text: string, kind: 'where' | 'query'): FragmentResult {
  const bytes = Buffer.from(text, 'utf8');
  const charOffset = (byteOffset: number): number => bytes.subarray(0, byteOffset).toString('utf8').length;

  let tokens: readonly Token[];
  try {
    tokens = scan(text);
  } catch {
    // The scanner only throws for text it cannot tokenize; the parser names the problem.
    const result = parse(text);
    const message = result.ok ? 'cannot be tokenized' : result.error.message;
    return { ok: false, problems: [{ message, offset: result.ok ? 0 : charOffset(result.error.offset ?? 0) }] };
  }

  const problems: FragmentProblem[] = [];
  const parts: (string | { ref: string })[] = [];
  let depth = 0;
  let copied = 0;
  for (const [i, token] of tokens.entries()) {
    const at = charOffset(token.start);
    if (/[\r\n]/.test(token.text) && token.tokenName !== 'SQL_COMMENT' && token.tokenName !== 'C_COMMENT') {
      // The compiler lays SQL out line by line (indenting DO bodies): a line break inside a string
      // or quoted name would change its value. E'a\nb' or chr(10) say the same thing on one line.
      problems.push({ message: "a line break inside a string or quoted name is not supported here: write E'...\\n...' or chr(10)", offset: at });
    } else if (token.tokenName === 'SQL_COMMENT' || token.tokenName === 'C_COMMENT') {
      problems.push({ message: 'SQL comments are not allowed here (use a YAML # comment)', offset: at });
    } else if (token.text === ';') {
      problems.push({ message: `a ${kind} must be a single ${kind === 'where' ? 'expression' : 'SELECT'}: remove the ';' and what follows`, offset: at });
    } else if (token.text === '(') {
      depth++;
    } else if (token.text === ')') {
      if (--depth < 0) problems.push({ message: "unbalanced parentheses: this ')' closes nothing", offset: at });
    } else if (token.text === ':') {
      const next = tokens[i + 1];
      if (next && next.start === token.end && REF.test(next.text)) {
        parts.push(bytes.subarray(copied, token.start).toString('utf8'), { ref: next.text });
        copied = next.end;
      }
    }
  }
  if (depth > 0) problems.push({ message: "unbalanced parentheses: a '(' is never closed", offset: text.length });
  parts.push(bytes.subarray(copied).toString('utf8'));
  const fragment: SqlFragment = { text, parts: parts.filter((p) => p !== '') };
  if (problems.length) return { ok: false, problems };

  // Parse what the compiler will produce, with stand-ins of the same grammar for references.
  const prefix = kind === 'where' ? 'SELECT 1 WHERE (' : '';
  const suffix = kind === 'where' ? ')' : '';
  let body = '';
  const map: { at: number; source: number }[] = [];
  let source = 0;
  for (const part of fragment.parts) {
    map.push({ at: prefix.length + body.length, source });
    if (typeof part === 'string') {
      body += part;
      source += part.length;
    } else {
      body += part.ref === 'subject' ? '(SELECT NULL)' : '$1';
      source += part.ref.length + 1;
    }
  }
  const toSource = (wrappedChar: number): number => {
    const entry = [...map].reverse().find((m) => m.at <= wrappedChar) ?? { at: 0, source: 0 };
    return Math.min(text.length, Math.max(0, entry.source + (wrappedChar - entry.at)));
  };
  const wrapped = prefix + body + suffix;
  const result = parse(wrapped);
  if (!result.ok) {
    const at = Buffer.from(wrapped).subarray(0, result.error.offset ?? 0).toString('utf8').length;
    if (at >= prefix.length + body.length) {
      // The parser ran out of author text: point at its last word rather than past the end.
      return { ok: false, problems: [{ message: `incomplete ${kind === 'where' ? 'expression' : 'query'} (${result.error.message})`, offset: text.trimEnd().length }] };
    }
    return { ok: false, problems: [{ message: result.error.message, offset: toSource(at) }] };
  }
  const shapeProblem = kind === 'where' ? whereShape(result.stmts) : queryShape(result.stmts);
  if (shapeProblem) return { ok: false, problems: [{ message: shapeProblem, offset: 0 }] };
  return { ok: true, fragment };
}

/** `SELECT 1 WHERE (<expr>)` must parse to exactly that: nothing grafted on around the expression. */
function whereShape(stmts: readonly { stmt: Record<string, unknown> }[]): string | undefined {
  const select = stmts.length === 1 ? (stmts[0]!.stmt['SelectStmt'] as Record<string, unknown> | undefined) : undefined;
  const allowed = new Set(['targetList', 'whereClause', 'limitOption', 'op']);
  if (!select || Object.keys(select).some((k) => !allowed.has(k)) || (select['op'] ?? 'SETOP_NONE') !== 'SETOP_NONE') {
    return 'must be exactly one SQL boolean expression';
  }
  return undefined;
}

const WRITING_NODES = ['InsertStmt', 'UpdateStmt', 'DeleteStmt', 'MergeStmt', 'intoClause', 'lockingClause'];

function queryShape(stmts: readonly { stmt: Record<string, unknown> }[]): string | undefined {
  if (stmts.length !== 1 || !stmts[0]!.stmt['SelectStmt']) return 'must be exactly one SELECT statement';
  const found = findKeys(stmts[0]!.stmt, new Set(WRITING_NODES));
  return found ? `must only read: ${found} is not allowed in a query` : undefined;
}

function findKeys(node: unknown, keys: ReadonlySet<string>): string | undefined {
  if (Array.isArray(node)) {
    for (const item of node) {
      const found = findKeys(item, keys);
      if (found) return found;
    }
  } else if (node && typeof node === 'object') {
    for (const [k, v] of Object.entries(node)) {
      if (keys.has(k)) return k.replace(/Stmt$/, '').replace('intoClause', 'SELECT INTO').replace('lockingClause', 'FOR UPDATE/SHARE').toUpperCase();
      const found = findKeys(v, keys);
      if (found) return found;
    }
  }
  return undefined;
}

/** The :name references of a fragment, in order, without repeats. */
export function referencesOf(fragment: SqlFragment): string[] {
  return [...new Set(fragment.parts.flatMap((p) => (typeof p === 'string' ? [] : [p.ref])))];
}
