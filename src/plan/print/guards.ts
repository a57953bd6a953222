import { oneLine, qualified } from '../../core/names.js';
import type { FunctionName } from '../../policy.js';
import { quoteIdent, quoteLiteral } from '../../sql/quote.js';
import type { TableName } from '../../policy.js';
import { GuardCode, itemLabel, type SubjectGuardNode } from '../nodes.js';
import { PARAMS, preservedSql, raiseCall, REPORT, SUBJECT } from '../sql.js';

/**
 * Assertions that raise before anything is removed: each one SELECT that returns no row (or a
 * NULL) when it holds and calls pg_temp.purgekit_raise when it does not.
 */

export function tablesGuard(tables: readonly { readonly name: string; readonly why: string }[]): string {
  return [
    `SELECT ${raiseCall(GuardCode.tableMissing, "'required table is absent: ' || string_agg(format('%s (%s)', name, why), ', ')")}`,
    'FROM (VALUES',
    tables.map(({ name, why }) => `  (${quoteLiteral(name)}, ${quoteLiteral(why)})`).join(',\n'),
    ') AS needed (name, why)',
    'WHERE to_regclass(name) IS NULL',
    'HAVING count(*) > 0',
  ].join('\n');
}

export function functionsGuard(functions: readonly FunctionName[]): string {
  const values = functions.map((f) => `(${f.schema === undefined ? 'NULL' : quoteLiteral(f.schema)}, ${quoteLiteral(f.name)})`).join(', ');
  const volatile = "string_agg(DISTINCT format('%I.%I', n.nspname, p.proname), ', ')";
  return [
    `SELECT ${raiseCall(GuardCode.volatileFunction, `'the policy calls a VOLATILE function (it could change data or settings): ' || ${volatile} || '; list it in allow_functions only if you vouch for it'`)}`,
    `FROM (VALUES ${values}) AS called (schema, name)`,
    'JOIN pg_catalog.pg_proc p ON p.proname = called.name',
    'JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace',
    "WHERE p.provolatile = 'v' AND n.nspname = ANY (CASE WHEN called.schema IS NULL THEN current_schemas(true)::text[] ELSE ARRAY[called.schema::text] END)",
    'HAVING count(*) > 0',
  ].join('\n');
}

/** The lookup parameters of `by` are all given (SQL over the parameter table's columns). */
export function given(by: readonly string[]): string {
  return by.map((b) => `${quoteIdent(b)} IS NOT NULL`).join(' AND ');
}

/** The report's subject row, written before the guard so that a run the guard stops still says what matched. */
export function subjectCount(table: TableName): string {
  return `INSERT INTO ${REPORT} (item, target, outcome, rows)\nSELECT ${quoteLiteral(itemLabel({ kind: 'subject' }))}, ${quoteLiteral(qualified(table))}, 'matched', count(*) FROM ${SUBJECT}`;
}

export function subjectGuard(node: SubjectGuardNode): string {
  const key = quoteIdent(node.key);
  const anyGiven = node.lookups.map((by) => `(${given(by)})`).join(' OR ');
  const choices = node.lookups.map((by) => by.join(' + ')).join(', or ');
  const name = node.table.name;
  // CASE takes the first failing branch only: no lookup given is said as such, not as "none matched".
  const branches = [
    `WHEN NOT (SELECT ${anyGiven} FROM ${PARAMS}) THEN ${raiseCall(GuardCode.noLookup, quoteLiteral(`no lookup parameters given: set ${choices}`))}`,
    `WHEN matched = 0 THEN ${raiseCall(GuardCode.noSubject, quoteLiteral(`no ${name} row matched`))}`,
    `WHEN matched > ${node.max} AND NOT (SELECT force_multi FROM ${PARAMS}) THEN ${raiseCall(GuardCode.multipleSubjects, `format(${quoteLiteral(`%s ${name} rows matched, more than ${node.max}; set force_multi to purge them all`)}, matched)`)}`,
    ...node.preserved.map(
      (rule) =>
        `WHEN EXISTS (SELECT FROM ${qualified(node.table)} WHERE ${key} IN (TABLE ${SUBJECT}) AND (${preservedSql(rule)})) THEN ${raiseCall(GuardCode.preserveViolated, quoteLiteral(`a matched ${name} row is preserved by preserve rule ${rule.rule} (${oneLine(rule.where.text)})`))}`,
    ),
  ];
  return ['SELECT CASE', ...branches.map((b) => `  ${b}`), 'END', `FROM (SELECT rows AS matched FROM ${REPORT} WHERE item = ${quoteLiteral(itemLabel({ kind: 'subject' }))}) AS subject`].join('\n');
}
