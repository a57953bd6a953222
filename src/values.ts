import { UnrenderableValueError, UsageError } from './errors.js';
import type { ParamDecl, Policy } from './policy.js';
import { quoteLiteral, LiteralError } from './sql/quote.js';
import { kebab } from './compile/compile.js';

/**
 * Run-time values of a policy's params and flags, from command-line options (--user-id x,
 * --delete-owned-companies, --force-multi) and --param k=v. Values stay strings here: the
 * runner binds them, render quotes them.
 */
export interface RunValues {
  readonly params: ReadonlyMap<string, string>;
  readonly flags: ReadonlyMap<string, boolean>;
  readonly forceMulti: boolean;
}

const FORMATS: Partial<Record<ParamDecl['type'], RegExp>> = {
  integer: /^[+-]?\d+$/,
  bigint: /^[+-]?\d+$/,
  numeric: /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/,
  uuid: /^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$/,
  boolean: /^(true|false|t|f|yes|no|on|off|1|0)$/i,
};

/**
 * options: the parsed command line, keys as typed (kebab-case), minus the command's own options.
 * A param's value must be a string; a flag's must be a boolean (or "true"/"false" via --param).
 */
export function collectValues(policy: Policy, options: Readonly<Record<string, unknown>>, pairs: readonly string[]): RunValues {
  const params = new Map<string, string>();
  const flags = new Map<string, boolean>();
  let forceMulti = false;
  const entries: [string, unknown][] = Object.entries(options);
  for (const pair of pairs) {
    const at = pair.indexOf('=');
    if (at <= 0) throw new UsageError(`--param ${pair}: expected name=value`);
    entries.push([pair.slice(0, at), pair.slice(at + 1)]);
  }
  for (const [rawName, value] of entries) {
    const name = rawName.replaceAll('-', '_');
    const param = policy.params.find((p) => p.name === name);
    const flag = policy.flags.find((f) => f.name === name);
    if (param) {
      if (typeof value !== 'string') throw new UsageError(`--${kebab(name)} needs a value`);
      const format = FORMATS[param.type];
      if (format && !format.test(value)) throw new UsageError(`--${kebab(name)}: "${value}" is not a valid ${param.type}`);
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

export function describeOptions(policy: Policy): string {
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
