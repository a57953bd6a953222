import type postgres from 'postgres';
import { InvalidPolicyError, UsageError } from '../core/errors.js';
import { kebab, qualified } from '../core/names.js';
import { loadPolicyFile, locate, type PathSegment } from '../load/loadPolicy.js';
import type { ParamType, Policy, Subject } from '../policy.js';
import { SUBJECT } from '../plan/sql.js';
import { quoteIdent } from '../sql/quote.js';
import { didYouMean } from '../validate/didYouMean.js';
import { describe } from '../validate/schema.js';
import { checkValue, type RunValues } from '../values.js';
import type { IdentifyingValue, ValueSource } from './types.js';

/**
 * The values that identify the subject: the lookup params given, and, from the rows the
 * policy's lookup finds, the subject key and every subject.identifiers column; plus what
 * --value name=value gives directly (the way to scan after a purge, when the rows are gone).
 * A --value name must be one of those; a key or identifier column's value must fit its
 * column's type, a param's its declared type: the error points at the policy line that says so.
 */
export interface ValuePair {
  readonly name: string;
  readonly value: string;
}

/** Shorter values, and bare numbers, would match unrelated text: they are matched exactly only. */
export const MIN_SUBSTRING = 5;

export function parseValuePairs(pairs: readonly string[]): ValuePair[] {
  return pairs.map((pair) => {
    const at = pair.indexOf('=');
    if (at <= 0) throw new UsageError(`--value ${pair.slice(0, 40)}: expected name=value`);
    return { name: pair.slice(0, at), value: pair.slice(at + 1) };
  });
}

interface Named {
  readonly column: string;
  readonly source: ValueSource;
  /** Where the policy declares it, for a located error. */
  readonly path: readonly PathSegment[];
  /** The type its values must have; undefined: any text. */
  readonly type?: ParamType;
  readonly typeName: string;
}

export async function identifyingValues(
  sql: postgres.Sql,
  policy: Policy,
  values: RunValues,
  pairs: readonly ValuePair[],
  options: { substring: boolean },
): Promise<{ values: IdentifyingValue[]; subjects: number | null; lookup: string | null }> {
  const subject = policy.subject;
  if (!subject) throw new UsageError(`${policy.name} is a ${policy.kind} policy: residue needs a purge policy (its subject says what identifies a person)`);
  const types = await columnTypes(sql, subject);
  await checkColumns(policy, subject, types);
  const named = new Map<string, Named>();
  const column = (name: string, source: ValueSource, path: PathSegment[]) => {
    const typeName = types.get(name) ?? 'text';
    const type = PARAM_TYPE[typeName.replace(/\(.*\)$/, '')];
    named.set(name, { column: name, source, path, typeName, ...(type ? { type } : {}) });
  };
  column(subject.key, 'key', ['subject', 'key']);
  subject.identifiers.forEach((c, i) => named.has(c) || column(c, 'identifier', ['subject', 'identifiers', i]));
  const lookupParams = new Set(subject.lookup.flatMap((l) => l.by));
  for (const p of policy.params) {
    if (lookupParams.has(p.name) && !named.has(p.name)) named.set(p.name, { column: p.name, source: 'param', path: ['params', p.name, 'type'], type: p.type, typeName: p.type });
  }

  const found: Found[] = [];
  for (const { name, value } of pairs) {
    const decl = named.get(name) ?? named.get(name.replaceAll('-', '_'));
    if (!decl) {
      const hint = didYouMean(name, [...named.keys()]);
      throw new UsageError(`--value ${name}: ${policy.name} has no identifying value of that name${hint ? ` (did you mean ${hint}?)` : ''}; it has ${[...named.keys()].join(', ')}`);
    }
    const problem = decl.type ? checkValue(decl.type, value) : checkValue('text', value);
    if (problem) {
      const file = await loadPolicyFile(policy.source.path);
      const at = locate(file, decl.path);
      const what = decl.source === 'param' ? `param ${decl.column} is ${decl.typeName}` : `column ${qualified(subject.table)}.${quoteIdent(decl.column)} is ${decl.typeName}`;
      throw new InvalidPolicyError([{ ...at, message: `--value ${name}: the value is not a valid ${decl.type ?? 'text'} (${what}): ${problem}` }]);
    }
    found.push({ name: decl.column, column: decl.column, source: decl.source, value });
  }
  for (const [name, value] of values.params) if (lookupParams.has(name)) found.push({ name, column: name, source: 'param', value });

  // The subject rows: by the policy's lookup when its params are given, else by a key given with --value.
  const lookup = subject.lookup.find((l) => l.by.every((b) => values.params.has(b)));
  const keys = found.filter((f) => f.source === 'key').map((f) => f.value);
  let subjects: number | null = null;
  if (lookup || keys.length) {
    const rows = await subjectRows(sql, policy, subject, lookup, values, keys, types.get(subject.key)!);
    subjects = rows.length;
    found.unshift(...fromRows(subject, rows));
  }
  return {
    values: distinct(found, options.substring),
    subjects,
    lookup: lookup ? lookup.by.map((b) => `--${kebab(b)}`).join(' + ') : keys.length ? `--value ${subject.key}` : null,
  };
}

/**
 * apply|plan --residue: the same values, read inside the purge's own transaction before its first
 * delete, from exactly the rows its lookup found (pg_temp.purgekit_subject), and the lookup params
 * given. In a savepoint: a failure here is reported, never the purge's. checkIdentifiers ran first.
 */
export async function capturedValues(tx: postgres.TransactionSql, policy: Policy, values: RunValues): Promise<{ values: IdentifyingValue[]; subjects: number }> {
  const subject = policy.subject!;
  const columns = [...new Set([subject.key, ...subject.identifiers])];
  const rows = (await tx.savepoint((sp) =>
    sp.unsafe(`SELECT ${columns.map((c) => `${quoteIdent(c)}::text AS ${quoteIdent(c)}`).join(', ')} FROM ${qualified(subject.table)} WHERE ${quoteIdent(subject.key)} IN (TABLE ${SUBJECT}) LIMIT 1000`),
  )) as unknown as Record<string, string | null>[];
  const lookupParams = new Set(subject.lookup.flatMap((l) => l.by));
  const params = [...values.params].filter(([name]) => lookupParams.has(name)).map(([name, value]) => ({ name, column: name, source: 'param' as const, value }));
  return { values: distinct([...fromRows(subject, rows), ...params], true), subjects: rows.length };
}

/** Before a run with --residue: subject.key and subject.identifiers are columns of the subject table (a located error otherwise). */
export async function checkIdentifiers(sql: postgres.Sql, policy: Policy): Promise<void> {
  const subject = policy.subject;
  if (policy.kind !== 'purge' || !subject) throw new UsageError(`--residue: ${policy.name} is a ${policy.kind} policy; the residue scan needs a purge policy (its subject says what identifies a person)`);
  await checkColumns(policy, subject, await columnTypes(sql, subject));
}

type Found = Omit<IdentifyingValue, 'email' | 'substring'>;

function fromRows(subject: Subject, rows: readonly Record<string, string | null>[]): Found[] {
  return rows.flatMap((row, i) => {
    const suffix = rows.length > 1 ? `#${i + 1}` : '';
    return Object.entries(row).flatMap(([col, value]): Found[] =>
      value === null || value === '' ? [] : [{ name: `${col}${suffix}`, column: col, source: col === subject.key ? 'key' : 'identifier', value }],
    );
  });
}

/** One entry per value (emails ignoring case): what the database holds comes first and names it. */
function distinct(found: readonly Found[], substring: boolean): IdentifyingValue[] {
  const seen = new Set<string>();
  const same = (v: string) => (EMAIL.test(v) ? v.toLowerCase() : v);
  return found.filter((f) => !seen.has(same(f.value)) && (seen.add(same(f.value)), true)).map((v) => classify(v, substring));
}

const PARAM_TYPE: Readonly<Record<string, ParamType>> = {
  integer: 'integer',
  smallint: 'integer',
  bigint: 'bigint',
  numeric: 'numeric',
  uuid: 'uuid',
  boolean: 'boolean',
  date: 'date',
  'timestamp with time zone': 'timestamptz',
};

const EMAIL = /^[^@\s]+@[^@\s]+$/;

function classify(v: Omit<IdentifyingValue, 'email' | 'substring'>, substring: boolean): IdentifyingValue {
  const email = EMAIL.test(v.value);
  return { ...v, email, substring: substring && v.value.length >= MIN_SUBSTRING && !/^[+-]?\d+(\.\d+)?$/.test(v.value) };
}

async function columnTypes(sql: postgres.Sql, subject: Subject): Promise<Map<string, string>> {
  const rows = await sql<{ name: string; type: string }[]>`
    SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type
    FROM pg_attribute a
    WHERE a.attrelid = to_regclass(${qualified(subject.table)}) AND a.attnum > 0 AND NOT a.attisdropped`;
  if (!rows.length) throw new UsageError(`the subject table ${qualified(subject.table)} does not exist in this database`);
  return new Map(rows.map((r) => [r.name, r.type]));
}

/** subject.key and subject.identifiers must be columns of the subject table: located like lint's PK-L002. */
async function checkColumns(policy: Policy, subject: Subject, types: ReadonlyMap<string, string>): Promise<void> {
  const named: [PathSegment[], string][] = [[['subject', 'key'], subject.key], ...subject.identifiers.map((c, i): [PathSegment[], string] => [['subject', 'identifiers', i], c])];
  const missing = named.filter(([, c]) => !types.has(c));
  if (!missing.length) return;
  const file = await loadPolicyFile(policy.source.path);
  throw new InvalidPolicyError(
    missing.map(([path, c]) => {
      const hint = didYouMean(c, [...types.keys()]);
      return { ...locate(file, path), message: `${describe(path)}: column ${quoteIdent(c)} of ${qualified(subject.table)} does not exist${hint ? ` (did you mean ${hint}?)` : ''}` };
    }),
  );
}

/**
 * The subject rows' key and identifier values as text, read-only. The lookup's where is the
 * author's SQL with each :param bound ($n, cast to its type, normalized as declared).
 */
async function subjectRows(
  sql: postgres.Sql,
  policy: Policy,
  subject: Subject,
  lookup: Subject['lookup'][number] | undefined,
  values: RunValues,
  keys: readonly string[],
  keyType: string,
): Promise<Record<string, string | null>[]> {
  const columns = [...new Set([subject.key, ...subject.identifiers])];
  const select = columns.map((c) => `${quoteIdent(c)}::text AS ${quoteIdent(c)}`).join(', ');
  const bound: string[] = [];
  const bind = (value: string) => (bound.push(value), `$${bound.length}`);
  const conditions: string[] = [];
  if (lookup) {
    conditions.push(
      `(${lookup.where.parts
        .map((part) => {
          if (typeof part === 'string') return part;
          const param = policy.params.find((p) => p.name === part.ref)!;
          const ref = `${bind(values.params.get(param.name)!)}::text::${param.type}`;
          return param.normalize ? `${param.normalize}(${ref})` : ref;
        })
        .join('')})`,
    );
  }
  if (keys.length) conditions.push(`${quoteIdent(subject.key)} = ANY(ARRAY[${keys.map(bind).join(', ')}]::text[]::${keyType}[])`);
  const text = `SELECT ${select} FROM ${qualified(subject.table)} WHERE ${conditions.join(' OR ')} LIMIT 1000`;
  return sql.begin('read only', async (tx) => {
    await tx.unsafe(`SET LOCAL search_path = ${quoteIdent(policy.schema)}`);
    return (await tx.unsafe(text, bound)) as unknown as Record<string, string | null>[];
  });
}
