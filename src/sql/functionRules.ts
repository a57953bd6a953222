import type { FunctionName, Policy, SqlFragment } from '../policy.js';
import { CORE_FUNCTIONS, VOLATILE_FUNCTIONS } from './volatileFunctions.js';

/**
 * Which functions author SQL may call. Author SQL (where, lookups, preserve rules, expectations)
 * must not be able to change anything: not a row, not a setting, not another session, not a
 * file. PostgreSQL marks every function that can as VOLATILE, so the rule is:
 *
 *   refused  every VOLATILE function of core PostgreSQL or a contrib extension (the list is
 *            generated from pg_proc: scripts/function-list.ts -> volatileFunctions.ts),
 *            matched by name whatever its schema,
 *   except   the few below that are volatile only because their result varies (they read a
 *            clock, a random generator or a size) and change nothing,
 *   unless   the policy names the function in allow_functions (the author vouches for it).
 *
 * Stable and immutable built-ins were reviewed against the same question on PostgreSQL 15 and
 * 17 (core and contrib): none writes, signals, sleeps or reads files; casts, operators and type
 * input/output functions are never volatile (the generator fails if that changes). A
 * user-defined function is judged at run time against the live catalog (its own VOLATILE mark),
 * and whatever a function mislabelled STABLE does to the session's settings is caught by the
 * settings check before COMMIT (PK010).
 */
export const HARMLESS_VOLATILE: ReadonlySet<string> = new Set([
  // values
  'random', 'random_normal', 'gen_random_uuid', 'gen_random_bytes', 'gen_salt', 'normal_rand',
  'uuid_generate_v1', 'uuid_generate_v1mc', 'uuid_generate_v4', 'array_shuffle', 'array_sample',
  // clocks
  'clock_timestamp', 'timeofday',
  // sizes and the partition tree
  'pg_relation_size', 'pg_total_relation_size', 'pg_table_size', 'pg_indexes_size', 'pg_partition_tree', 'pg_partition_ancestors',
]);

export function functionLabel(f: FunctionName): string {
  return f.schema ? `${f.schema}.${f.name}` : f.name;
}

/** An allow_functions entry covers a call: `name` any call of that name, `schema.name` only one qualified so (or unqualified). */
export function isAllowed(f: FunctionName, allowed: readonly string[]): boolean {
  return allowed.some((a) => {
    const dot = a.lastIndexOf('.');
    if (dot < 0) return a === f.name;
    return a.slice(dot + 1) === f.name && (f.schema === undefined || f.schema === a.slice(0, dot));
  });
}

/** Why a call of this function is refused at validate time, or undefined when it is not. */
export function refusal(f: FunctionName, allowed: readonly string[]): string | undefined {
  const origin = VOLATILE_FUNCTIONS.get(f.name);
  if (origin === undefined || HARMLESS_VOLATILE.has(f.name) || isAllowed(f, allowed)) return undefined;
  const from = origin.split(', ').includes('core') ? 'a volatile PostgreSQL function' : `a volatile function of the ${origin} extension`;
  return `${functionLabel(f)}() is ${from} (it can change data, settings or other sessions) and author SQL may only read: list it in allow_functions if you vouch for it`;
}

/**
 * Whether only the live catalog can judge a call: not a built-in (validation judged those by
 * name), not vouched for, not one of the harmless volatile ones.
 */
export function needsCatalogCheck(f: FunctionName, allowed: readonly string[]): boolean {
  if (isAllowed(f, allowed) || HARMLESS_VOLATILE.has(f.name)) return false;
  return !((f.schema === undefined || f.schema === 'pg_catalog') && CORE_FUNCTIONS.has(f.name));
}

/** Every fragment of author SQL in a policy, with where it sits in the YAML. */
export function authorSql(policy: Policy): { path: readonly (string | number)[]; fragment: SqlFragment }[] {
  return [
    ...(policy.subject?.lookup.map((l, i) => ({ path: ['subject', 'lookup', i, 'where'], fragment: l.where })) ?? []),
    ...policy.steps.flatMap((s, i) => (s.where ? [{ path: ['steps', i, 'where'], fragment: s.where }] : [])),
    // anonymize: expressions (the new value of a column) are author SQL too.
    ...policy.steps.flatMap((s, i) => (s.update?.set ?? []).flatMap((c) => (c.value.kind === 'expression' ? [{ path: ['steps', i, 'anonymize', c.column, 'with'], fragment: c.value.sql }] : []))),
    ...policy.preserve.map((r, i) => ({ path: ['preserve', i, 'where'], fragment: r.where })),
    ...policy.expect.map((e, i) => ({ path: ['expect', i, 'query'], fragment: e.query })),
  ];
}
