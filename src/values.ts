import { LiteralError, UnrenderableValueError, UsageError } from './core/errors.js';
import type { ParamType, Policy } from './policy.js';
import { quoteLiteral } from './sql/quote.js';
import { kebab } from './core/names.js';

/**
 * Run-time values of a policy's params and flags, from command-line options (--user-id x,
 * --delete-owned-companies, --force-multi), --param k=v and --param-escaped k=v. Values stay
 * strings here: the runner binds them as text cast by the server, render quotes them; both read
 * the same checked string, so a value means the same thing in a script and in a run.
 */
export interface RunValues {
  readonly params: ReadonlyMap<string, string>;
  readonly flags: ReadonlyMap<string, boolean>;
  readonly forceMulti: boolean;
}

/** What the caller gives: the parsed command line, --param pairs, --param-escaped pairs. */
export type ValueOptions = Readonly<Record<string, unknown>>;

const REPLACEMENT = '\uFFFD';

/**
 * options: the parsed command line, keys as typed (kebab-case), minus the command's own options.
 * A param's value must be a string; a flag's must be a boolean (or "true"/"false" via --param).
 * escapedPairs (--param-escaped name=value) read value with JSON string escapes (\uFFFD, \\,
 * \", \n, \t ...): the only way to give U+FFFD, which elsewhere is what Node makes of bytes
 * that are not UTF-8 and is refused.
 */
export function collectValues(policy: Policy, options: ValueOptions, pairs: readonly string[], escapedPairs: readonly string[] = []): RunValues {
  const params = new Map<string, string>();
  const flags = new Map<string, boolean>();
  let forceMulti = false;
  const entries: { name: string; value: unknown; escaped: boolean }[] = Object.entries(options).map(([name, value]) => ({ name, value, escaped: false }));
  const split = (pair: string, option: string) => {
    const at = pair.indexOf('=');
    if (at <= 0) throw new UsageError(`${option} ${pair}: expected name=value`);
    return { name: pair.slice(0, at), value: pair.slice(at + 1) };
  };
  for (const pair of pairs) entries.push({ ...split(pair, '--param'), escaped: false });
  for (const pair of escapedPairs) {
    const { name, value } = split(pair, '--param-escaped');
    entries.push({ name, value: unescapeValue(name, value), escaped: true });
  }
  for (const { name: rawName, value, escaped } of entries) {
    const name = rawName.replaceAll('-', '_');
    const param = policy.params.find((p) => p.name === name);
    const flag = policy.flags.find((f) => f.name === name);
    if (param) {
      if (typeof value !== 'string') throw new UsageError(`--${kebab(name)} needs a value`);
      if (!escaped && value.includes(REPLACEMENT)) {
        throw new UsageError(
          `--${kebab(name)}: the value contains U+FFFD, which is what bytes that are not valid UTF-8 become; ` +
            `pass valid UTF-8, or, if U+FFFD is really meant, write it as \\uFFFD with --param-escaped ${name}=...`,
        );
      }
      const unstorable = textProblem(value);
      if (unstorable) throw new UsageError(`--${kebab(name)}: ${unstorable}`);
      const problem = checkValue(param.type, value);
      if (problem) throw new UsageError(`--${kebab(name)}: ${param.personal ? 'the value' : JSON.stringify(value)} is not a valid ${param.type}: ${problem}`);
      params.set(name, value);
    } else if (flag || (name === 'force_multi' && policy.kind === 'purge')) {
      const on = value === true || value === 'true' ? true : value === false || value === 'false' ? false : undefined;
      if (on === undefined) throw new UsageError(`--${kebab(name)} is a flag: it takes no value (or true/false with --param)`);
      if (flag) flags.set(name, on);
      else forceMulti = on;
    } else {
      throw new UsageError(`unknown option --${kebab(rawName)} for policy ${policy.name}; it takes ${describeOptions(policy)}`);
    }
  }
  return { params, flags, forceMulti };
}

/** --param-escaped: the value as the body of a JSON string, so \uXXXX, \\, \" and \n mean what JSON says. */
function unescapeValue(name: string, text: string): string {
  if (text.includes(REPLACEMENT)) {
    throw new UsageError(`--param-escaped ${name}: the value contains U+FFFD (bytes that are not valid UTF-8); write it as \\uFFFD`);
  }
  try {
    // A raw " would end the string early: JSON wants it escaped as \", and says so by failing.
    const value: unknown = JSON.parse(`"${text}"`);
    if (typeof value === 'string') return value;
  } catch {
    /* reported below */
  }
  throw new UsageError(`--param-escaped ${name}: not a valid escaped value (JSON string escapes: \\uXXXX, \\\\, \\", \\n, \\t; a " must be written \\")`);
}

const INTEGER = /^[+-]?\d+$/;
const NUMERIC = /^([+-]?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/;
const UUID = /^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$/;
const BOOLEAN = /^(true|false|t|f|yes|no|y|n|on|off|1|0)$/i;
const DATE = /^(\d{4})-(\d{2})-(\d{2})$/;
const TIMESTAMP = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6}))?)?(?:\s?(Z|[+-]\d{2}(?::?\d{2})?))?)?$/i;
const RANGES: Partial<Record<ParamType, readonly [bigint, bigint]>> = {
  integer: [-(2n ** 31n), 2n ** 31n - 1n],
  bigint: [-(2n ** 63n), 2n ** 63n - 1n],
};
/** Special date/time inputs that name the same instant wherever they are read. */
const ABSOLUTE_SPECIALS = new Set(['infinity', '-infinity', 'epoch']);
const RELATIVE_SPECIALS = new Set(['now', 'today', 'tomorrow', 'yesterday', 'allballs']);
const MAX_NUMERIC_DIGITS = 1000;

/**
 * The one check of a value for its type, shared by render, plan and apply: undefined when
 * PostgreSQL accepts it and reads it the same in every session, else why not. It accepts a
 * documented subset of PostgreSQL's input syntax (docs/POLICY.md, "Parameter values"), so that
 * what passes here never fails, or means something else, when the server casts it.
 */
export function checkValue(type: ParamType, value: string): string | undefined {
  const unstorable = textProblem(value);
  if (unstorable) return unstorable;
  if (type === 'text') return undefined;
  if (value === '') return 'the value is empty';
  if (value.trim() !== value) return 'remove the spaces around it';
  switch (type) {
    case 'integer':
    case 'bigint': {
      if (!INTEGER.test(value)) return 'expected decimal digits with an optional sign';
      const [min, max] = RANGES[type]!;
      const n = BigInt(value);
      return n < min || n > max ? `out of range (${min} to ${max})` : undefined;
    }
    case 'numeric': {
      const m = NUMERIC.exec(value);
      if (!m || (m[2] === '' && (m[3] ?? '') === '')) return 'expected a decimal number such as 12.50 or 1.5e3 (NaN and Infinity are not accepted)';
      const digits = (m[2] ?? '').length + (m[3] ?? '').length;
      const exponent = Number(m[4] ?? '0');
      if (digits > MAX_NUMERIC_DIGITS || Math.abs(exponent) > MAX_NUMERIC_DIGITS) return `at most ${MAX_NUMERIC_DIGITS} digits and an exponent between -${MAX_NUMERIC_DIGITS} and ${MAX_NUMERIC_DIGITS}`;
      return undefined;
    }
    case 'uuid':
      return UUID.test(value) ? undefined : 'expected 32 hexadecimal digits, as 8-4-4-4-12 with hyphens or without';
    case 'boolean':
      return BOOLEAN.test(value) ? undefined : 'expected true or false (also t/f, yes/no, y/n, on/off, 1/0)';
    case 'date':
    case 'timestamptz':
      return checkDateTime(type, value);
  }
}

/** What no PostgreSQL text can hold, whatever the type. */
function textProblem(value: string): string | undefined {
  if (value.includes('\0')) return 'contains a NUL byte, which PostgreSQL text cannot hold';
  if (!value.isWellFormed()) return 'contains a lone UTF-16 surrogate (not valid Unicode)';
  return undefined;
}

function checkDateTime(type: 'date' | 'timestamptz', value: string): string | undefined {
  const lower = value.toLowerCase();
  if (ABSOLUTE_SPECIALS.has(lower)) return undefined;
  const example = type === 'date' ? '2025-01-31' : '2025-01-31T13:45:00Z';
  if (RELATIVE_SPECIALS.has(lower)) {
    return `"${lower}" depends on when it is read, so the audit log and a rendered script would not say which ${type === 'date' ? 'day' : 'instant'} was meant: write it out (${example})`;
  }
  const m = (type === 'date' ? DATE : TIMESTAMP).exec(value);
  if (!m) return `expected ISO 8601, such as ${example}${type === 'timestamptz' ? ' (an offset such as +02:00 or Z; without one, the session time zone applies)' : ''}, or infinity, -infinity, epoch`;
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map((x) => (x === undefined ? 0 : Number(x))) as [number, number, number, number, number, number];
  if (year < 1) return 'the year must be between 0001 and 9999';
  if (month < 1 || month > 12) return `there is no month ${m[2]}`;
  const days = [31, year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0) ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1]!;
  if (day < 1 || day > days) return `there is no day ${m[3]} in ${year}-${m[2]}`;
  if (hour > 23 || minute > 59 || second > 59) return 'the time of day must be between 00:00:00 and 23:59:59';
  const offset = m[8];
  if (offset && offset.toUpperCase() !== 'Z') {
    const [, h, mm] = /^[+-](\d{2}):?(\d{2})?$/.exec(offset)!;
    if (Number(h) > 15 || Number(mm ?? '0') > 59) return `the offset ${offset} is out of range (-15:59 to +15:59)`;
  }
  return undefined;
}

export function describeOptions(policy: Pick<Policy, 'params' | 'flags' | 'kind'>): string {
  const names = [
    ...policy.params.map((p) => `--${kebab(p.name)} <${p.type}>`),
    ...policy.flags.map((f) => `--${kebab(f.name)}`),
    ...(policy.kind === 'purge' ? ['--force-multi'] : []),
  ];
  return names.length ? names.join(', ') : 'no parameters';
}

/** Values as SQL literals for a standalone script, exactly as format('%L') would quote them. */
export function renderValues(policy: Policy, values: RunValues): Map<string, string> {
  const out = new Map<string, string>();
  for (const [name, value] of values.params) {
    try {
      out.set(name, quoteLiteral(value));
    } catch (e) {
      if (e instanceof LiteralError) throw new UnrenderableValueError(name, e.message);
      throw e;
    }
  }
  for (const [name, on] of values.flags) out.set(name, String(on));
  if (policy.kind === 'purge') out.set('force_multi', String(values.forceMulti));
  return out;
}

