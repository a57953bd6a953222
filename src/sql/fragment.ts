import type { FunctionName, SqlFragment } from '../policy.js';
import { refusal } from './functionRules.js';
import { parse, scan, type Token } from './parser.js';

/**
 * Checks SQL the policy author wrote, with the real PostgreSQL parser, and splits it at its
 * :name references. A `where` must be exactly one boolean expression that stays one when the
 * compiler wraps it in parentheses and appends to it; a `query` must be exactly one SELECT; a
 * `value` (an anonymize expression) exactly one expression. All of them may only read: the whole
 * parse tree is walked, and a data-modifying statement (INSERT, UPDATE, DELETE, MERGE, in a CTE
 * or anywhere), SELECT ... INTO, a locking clause (FOR UPDATE/SHARE) or a call of a volatile
 * function (functionRules.ts) anywhere in it is refused at its place. Comments are refused
 * outright: a trailing `--` would swallow what the compiler appends, and YAML `#` comments serve
 * the author just as well.
 */

export interface FragmentProblem {
  readonly message: string;
  /** 0-based character offset into the author's text. */
  readonly offset: number;
}

export type FragmentResult = { ok: true; fragment: SqlFragment } | { ok: false; problems: readonly FragmentProblem[] };

export interface FragmentOptions {
  /** allow_functions: names (or schema.names) of functions the author vouches for. */
  readonly allowFunctions?: readonly string[];
  /** The policy's set names: each stands for a subquery like :subject, not for a value like a param. */
  readonly sets?: ReadonlySet<string>;
}

type Kind = 'where' | 'query' | 'value';

/**
 * Author SQL is a condition or a short query; a bound keeps validation (and the file) fast on any
 * input. Real conditions, discovered ones included, are a few KB.
 */
export const MAX_FRAGMENT_BYTES = 65_536;

const REF = /^[a-z][a-z0-9_]*$/;
/**
 * What sql-formatter reads as one unquoted name (letters, marks, digits, _ and $). PostgreSQL
 * takes any non-ASCII byte as part of a name, so `a€` or `a<NBSP>` are names to it but not to the
 * formatter, which fails on them or, worse, reads NBSP as a space.
 */
const FORMATTER_NAME = /^[\p{Alphabetic}\p{Mark}_][\p{Alphabetic}\p{Mark}\p{Decimal_Number}_$]*$/u;

/** A dollar-quoted string whose tag sql-formatter recognises. */
const DOLLAR_TAG = /^\$([A-Za-z_][A-Za-z0-9_]*)?\$/;

export function checkWhere(text: string, options: FragmentOptions = {}): FragmentResult {
  return check(text, 'where', options);
}

export function checkQuery(text: string, options: FragmentOptions = {}): FragmentResult {
  return check(text, 'query', options);
}

/** One value expression (the new value of an anonymized column). */
export function checkValue(text: string, options: FragmentOptions = {}): FragmentResult {
  return check(text, 'value', options);
}

const WHAT: Record<Kind, string> = { where: 'expression', query: 'SELECT', value: 'expression' };

/** byte offset -> character (UTF-16) offset, in O(1) after one pass. */
function charOffsets(text: string): (byte: number) => number {
  const bytes = Buffer.byteLength(text, 'utf8');
  const table = new Uint32Array(bytes + 1);
  let b = 0;
  let c = 0;
  for (const ch of text) {
    const cp = ch.codePointAt(0)!;
    const n = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
    for (let k = 0; k < n; k++) table[b + k] = c;
    b += n;
    c += ch.length;
  }
  table[bytes] = c;
  return (byte) => table[Math.max(0, Math.min(bytes, byte))]!;
}

/**
 * Results by kind, options and text: checking is pure, and the same condition recurs within a
 * policy (`user_id IN :subject` is 9 of nexus-purge-user's 13 steps) and across policies, while
 * each check costs a scan and a parse through the WASM parser. Bounded, for long-lived callers.
 */
const checked = new Map<string, FragmentResult>();
const MAX_CHECKED = 10_000;

function check(text: string, kind: Kind, options: FragmentOptions): FragmentResult {
  const key = `${kind}\0${(options.allowFunctions ?? []).join(',')}\0${[...(options.sets ?? [])].join(',')}\0${text}`;
  const known = checked.get(key);
  if (known) return known;
  const result = checkOnce(text, kind, options);
  if (checked.size >= MAX_CHECKED) checked.clear();
  checked.set(key, result);
  return result;
}

function checkOnce(text: string, kind: Kind, options: FragmentOptions): FragmentResult {
  const size = Buffer.byteLength(text, 'utf8');
  if (size > MAX_FRAGMENT_BYTES) {
    return { ok: false, problems: [{ message: `is ${size.toLocaleString('en')} bytes of SQL, more than the ${MAX_FRAGMENT_BYTES.toLocaleString('en')} allowed here: split the step, or move the logic into a view`, offset: 0 }] };
  }
  const bytes = Buffer.from(text, 'utf8');
  const charOffset = charOffsets(text);

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
    } else if (token.tokenName === 'IDENT' && !token.text.startsWith('"') && !FORMATTER_NAME.test(token.text)) {
      const odd = [...token.text].find((ch, k) => !FORMATTER_NAME.test(k === 0 ? ch : `a${ch}`))!;
      const code = `U+${odd.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}`;
      // Unquoted, PostgreSQL folds ASCII letters only (in UTF-8): the same name, quoted.
      const quoted = `"${token.text.replace(/[A-Z]/g, (c) => c.toLowerCase())}"`;
      problems.push({ message: `the name ${token.text} contains ${code} (${JSON.stringify(odd)}), which only a quoted name may hold: write ${quoted}`, offset: at });
    } else if (token.text.startsWith('$') && token.tokenName !== 'PARAM' && !DOLLAR_TAG.test(token.text)) {
      problems.push({ message: 'a dollar-quote tag may hold ASCII letters, digits and _ only here (the SQL formatter reads no other): write $$...$$ or $tag$...$tag$', offset: at });
    } else if (token.text === ';') {
      problems.push({ message: `a ${kind} must be a single ${WHAT[kind]}: remove the ';' and what follows`, offset: at });
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
  if (problems.length) return { ok: false, problems };
  const textParts = parts.filter((p) => p !== '');

  // Parse what the compiler will produce, with stand-ins of the same grammar for references.
  const prefix = kind === 'where' ? 'SELECT 1 WHERE (' : kind === 'value' ? 'SELECT (' : '';
  const suffix = kind === 'query' ? '' : ')';
  let body = '';
  const map: { at: number; source: number }[] = [];
  let source = 0;
  for (const part of textParts) {
    map.push({ at: prefix.length + body.length, source });
    if (typeof part === 'string') {
      body += part;
      source += part.length;
    } else {
      body += part.ref === 'subject' || options.sets?.has(part.ref) ? '(SELECT NULL)' : '$1';
      source += part.ref.length + 1;
    }
  }
  /** A character offset in the wrapped text -> one in the author's text. */
  const toSource = (wrappedChar: number): number => {
    let lo = 0;
    let hi = map.length - 1;
    let entry = { at: 0, source: 0 };
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (map[mid]!.at <= wrappedChar) {
        entry = map[mid]!;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return Math.min(text.length, Math.max(0, entry.source + (wrappedChar - entry.at)));
  };
  const wrapped = prefix + body + suffix;
  const wrappedChar = charOffsets(wrapped);
  const result = parse(wrapped);
  if (!result.ok) {
    const at = wrappedChar(result.error.offset ?? 0);
    if (at >= prefix.length + body.length) {
      // The parser ran out of author text: point at its last word rather than past the end.
      return { ok: false, problems: [{ message: `incomplete ${kind === 'query' ? 'query' : 'expression'} (${result.error.message})`, offset: text.trimEnd().length }] };
    }
    return { ok: false, problems: [{ message: result.error.message, offset: toSource(at) }] };
  }
  const shapeProblem = kind === 'where' ? whereShape(result.stmts) : kind === 'value' ? valueShape(result.stmts) : queryShape(result.stmts);
  if (shapeProblem) return { ok: false, problems: [{ message: shapeProblem, offset: 0 }] };

  const sourceAt = (wrappedByte: number) => toSource(wrappedChar(wrappedByte));
  const walked = walk(result.stmts[0]!.stmt, wrapped, options);
  for (const p of walked.problems) problems.push({ message: p.message, offset: sourceAt(p.at) });
  if (kind === 'where') {
    const where = (result.stmts[0]!.stmt['SelectStmt'] as Node)['whereClause'];
    for (const p of notBoolean(where)) problems.push({ message: p.message, offset: sourceAt(p.at) });
  }
  if (problems.length) return { ok: false, problems: problems.sort((a, b) => a.offset - b.offset) };
  return { ok: true, fragment: { text, parts: textParts, functions: walked.functions } };
}

type Node = Record<string, unknown>;
const isNode = (v: unknown): v is Node => typeof v === 'object' && v !== null && !Array.isArray(v);

/** `SELECT 1 WHERE (<expr>)` must parse to exactly that: nothing grafted on around the expression. */
function whereShape(stmts: readonly { stmt: Node }[]): string | undefined {
  const select = stmts.length === 1 ? (stmts[0]!.stmt['SelectStmt'] as Node | undefined) : undefined;
  const allowed = new Set(['targetList', 'whereClause', 'limitOption', 'op']);
  if (!select || Object.keys(select).some((k) => !allowed.has(k)) || (select['op'] ?? 'SETOP_NONE') !== 'SETOP_NONE') {
    return 'must be exactly one SQL boolean expression';
  }
  return undefined;
}

/** `SELECT (<expr>)`: one target, nothing else. */
function valueShape(stmts: readonly { stmt: Node }[]): string | undefined {
  const select = stmts.length === 1 ? (stmts[0]!.stmt['SelectStmt'] as Node | undefined) : undefined;
  const allowed = new Set(['targetList', 'limitOption', 'op']);
  const targets = (select?.['targetList'] as Node[] | undefined) ?? [];
  // `a, b` in the parentheses is an implicit ROW(a, b): two values, not one.
  const row = ((targets[0]?.['ResTarget'] as Node | undefined)?.['val'] as Node | undefined)?.['RowExpr'] as Node | undefined;
  if (!select || Object.keys(select).some((k) => !allowed.has(k)) || targets.length !== 1 || row?.['row_format'] === 'COERCE_IMPLICIT_CAST' || (select['op'] ?? 'SETOP_NONE') !== 'SETOP_NONE') {
    return 'must be exactly one SQL expression';
  }
  return undefined;
}

function queryShape(stmts: readonly { stmt: Node }[]): string | undefined {
  if (stmts.length !== 1 || !stmts[0]!.stmt['SelectStmt']) return 'must be exactly one SELECT statement';
  return undefined;
}

/** Parse-tree keys (node types and SelectStmt fields) that write or lock, and the keyword that starts each. */
const WRITING: Record<string, { label: string; keyword: string }> = {
  InsertStmt: { label: 'INSERT', keyword: 'INSERT' },
  UpdateStmt: { label: 'UPDATE', keyword: 'UPDATE' },
  DeleteStmt: { label: 'DELETE', keyword: 'DELETE' },
  MergeStmt: { label: 'MERGE', keyword: 'MERGE' },
  intoClause: { label: 'SELECT ... INTO', keyword: 'INTO' },
  lockingClause: { label: 'FOR UPDATE/SHARE', keyword: 'FOR' },
};

interface Located {
  readonly message: string;
  /** UTF-8 byte offset into the wrapped text. */
  readonly at: number;
}

/**
 * Every node of the parse tree, iteratively (a deep tree cannot exhaust the stack): the function
 * calls, and what writes or locks. A node's position is the parser's `location` where it has
 * one; a statement without its own is placed at its keyword, found between the nearest located
 * ancestor and the first located node inside it.
 */
function walk(root: Node, wrapped: string, options: FragmentOptions): { problems: Located[]; functions: FunctionName[] } {
  const problems: Located[] = [];
  const functions = new Map<string, FunctionName>();
  const refused = new Set<string>();
  let keywords: { start: number; word: string }[] | undefined;
  const keywordAt = (word: string, after: number, before: number, last: boolean): number => {
    keywords ??= scan(wrapped).filter((t) => t.keywordName !== 'NO_KEYWORD').map((t) => ({ start: t.start, word: t.text.toUpperCase() }));
    const hits = keywords.filter((k) => k.word === word && k.start >= after && k.start < before);
    return (last ? hits[hits.length - 1] : hits[0])?.start ?? after;
  };
  const stack: { value: unknown; near: number }[] = [{ value: root, near: 0 }];
  while (stack.length) {
    const { value, near } = stack.pop()!;
    if (Array.isArray(value)) {
      for (let i = value.length - 1; i >= 0; i--) stack.push({ value: value[i], near });
      continue;
    }
    if (!isNode(value)) continue;
    const here = typeof value['location'] === 'number' && value['location'] >= 0 ? value['location'] : near;
    const entries = Object.entries(value);
    for (let i = entries.length - 1; i >= 0; i--) {
      const [key, child] = entries[i]!;
      const writing = WRITING[key];
      if (writing) {
        const inside = firstLocation(child);
        const at = key === 'lockingClause' ? keywordAt('FOR', here, Infinity, false) : keywordAt(writing.keyword, here, inside ?? Infinity, inside !== undefined);
        problems.push({ message: `must only read: ${writing.label} is not allowed here`, at });
      }
      if (key === 'FuncCall' && isNode(child)) {
        const names = (child['funcname'] as unknown[]).map((n) => ((n as Node)['String'] as Node)['sval'] as string);
        const f: FunctionName = names.length > 1 ? { schema: names[names.length - 2]!, name: names[names.length - 1]! } : { name: names[0]! };
        const label = `${f.schema ?? ''}.${f.name}`;
        functions.set(label, f);
        const why = refusal(f, options.allowFunctions ?? []);
        if (why && !refused.has(label)) {
          refused.add(label);
          problems.push({ message: why, at: typeof child['location'] === 'number' ? child['location'] : here });
        }
      }
      if (typeof child === 'object' && child !== null) stack.push({ value: child, near: here });
    }
  }
  return { problems, functions: [...functions.values()] };
}

/** The smallest parser location inside a subtree. */
function firstLocation(value: unknown): number | undefined {
  let best: number | undefined;
  const stack = [value];
  while (stack.length) {
    const v = stack.pop();
    if (Array.isArray(v)) stack.push(...v);
    else if (isNode(v)) {
      for (const [k, c] of Object.entries(v)) {
        if (k === 'location' && typeof c === 'number' && c >= 0) best = best === undefined ? c : Math.min(best, c);
        else if (typeof c === 'object' && c !== null) stack.push(c);
      }
    }
  }
  return best;
}

/** Arithmetic and concatenation: built-in operators that never yield a boolean. */
const VALUE_OPERATORS = new Set(['+', '-', '*', '/', '%', '^', '||']);

/**
 * A where whose expression is plainly not a condition (`42`, `'x'`, `NULL`, `a + 1`, `x::int`),
 * itself or as an operand of AND, OR, NOT. Anything else (columns, functions, subqueries) has a
 * type only the database knows; lint plans it (PK-L010).
 */
function notBoolean(node: unknown): Located[] {
  if (!isNode(node)) return [];
  const [[type, inner]] = Object.entries(node) as [[string, Node]];
  const at = typeof inner['location'] === 'number' ? inner['location'] : 0;
  const refuse = (what: string) => [{ message: `must be a condition (a boolean expression): ${what} is not one`, at }];
  switch (type) {
    case 'BoolExpr':
      return (inner['args'] as unknown[]).flatMap(notBoolean);
    case 'A_Const':
      if ('boolval' in inner) return [];
      return refuse(inner['isnull'] ? 'NULL' : 'sval' in inner ? 'a string constant' : 'a number');
    case 'TypeCast': {
      const names = ((inner['typeName'] as Node)['names'] as Node[]).map((n) => (n['String'] as Node)['sval']);
      return names[names.length - 1] === 'bool' ? [] : refuse(`a cast to ${names[names.length - 1]}`);
    }
    case 'A_Expr': {
      const name = ((inner['name'] as Node[] | undefined) ?? []).map((n) => (n['String'] as Node)['sval']);
      return inner['kind'] === 'AEXPR_OP' && VALUE_OPERATORS.has(String(name[name.length - 1])) ? refuse(`the ${name[name.length - 1]} operator's result`) : [];
    }
    case 'A_ArrayExpr':
      return refuse('an array');
    default:
      return [];
  }
}

/** The :name references of a fragment, in order, without repeats. */
export function referencesOf(fragment: SqlFragment): string[] {
  return [...new Set(fragment.parts.flatMap((p) => (typeof p === 'string' ? [] : [p.ref])))];
}
