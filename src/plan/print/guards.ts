import { display, oneLine, qualified } from '../../compile/compile.js';
import type { FunctionName } from '../../policy.js';
import { quoteIdent, quoteLiteral } from '../../sql/quote.js';
import { GuardCode, itemLabel, type SubjectGuardNode } from '../nodes.js';
import { doBlock, PARAMS, preservedSql, raise, reportRow, SUBJECT } from '../sql.js';

/** Assertions that raise before anything is removed. */

export function tablesGuard(tables: readonly { readonly name: string; readonly why: string }[]): string {
  const values = tables.map(({ name, why }) => `(${quoteLiteral(name)}, ${quoteLiteral(why)})`).join(',\n    ');
  return doBlock('guard', ['_missing text;'], [
    `SELECT string_agg(format('%s (%s)', name, why), ', ') INTO _missing`,
    `FROM (VALUES\n    ${values}\n) AS needed (name, why)`,
    'WHERE to_regclass(name) IS NULL;',
    'IF _missing IS NOT NULL THEN',
    `  ${raise(GuardCode.tableMissing, "'required table is absent: ' || _missing")}`,
    'END IF;',
  ]);
}

export function functionsGuard(functions: readonly FunctionName[]): string {
  const values = functions.map((f) => `(${f.schema === undefined ? 'NULL' : quoteLiteral(f.schema)}, ${quoteLiteral(f.name)})`).join(', ');
  return doBlock('guard', ['_volatile text;'], [
    "SELECT string_agg(DISTINCT format('%I.%I', n.nspname, p.proname), ', ') INTO _volatile",
    `FROM (VALUES ${values}) AS called (schema, name)`,
    'JOIN pg_catalog.pg_proc p ON p.proname = called.name',
    'JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace',
    "WHERE p.provolatile = 'v' AND n.nspname = ANY (CASE WHEN called.schema IS NULL THEN current_schemas(true)::text[] ELSE ARRAY[called.schema::text] END);",
    'IF _volatile IS NOT NULL THEN',
    `  ${raise(GuardCode.volatileFunction, "'the policy calls a VOLATILE function (it could change data or settings): ' || _volatile || '; list it in allow_functions only if you vouch for it'")}`,
    'END IF;',
  ]);
}

/** The lookup parameters of `by` are all given (SQL over the parameter table's columns). */
export function given(by: readonly string[]): string {
  return by.map((b) => `${quoteIdent(b)} IS NOT NULL`).join(' AND ');
}

export function subjectGuard(node: SubjectGuardNode): string {
  const key = quoteIdent(node.key);
  const table = qualified(node.table);
  const anyGiven = node.lookups.map((by) => `(${given(by)})`).join(' OR ');
  const choices = node.lookups.map((by) => by.join(' + ')).join(', or ');
  const body = [
    `IF NOT (SELECT ${anyGiven} FROM ${PARAMS}) THEN`,
    `  ${raise(GuardCode.noLookup, quoteLiteral(`no lookup parameters given: set ${choices}`))}`,
    'END IF;',
    `SELECT count(*) INTO _matched FROM ${SUBJECT};`,
    'IF _matched = 0 THEN',
    `  ${raise(GuardCode.noSubject, quoteLiteral(`no ${node.table.name} row matched`))}`,
    'END IF;',
    `IF _matched > ${node.max} AND NOT (SELECT force_multi FROM ${PARAMS}) THEN`,
    `  ${raise(GuardCode.multipleSubjects, `format(${quoteLiteral(`%s ${node.table.name} rows matched, more than ${node.max}; set force_multi to purge them all`)}, _matched)`)}`,
    'END IF;',
  ];
  for (const rule of node.preserved) {
    body.push(
      `IF EXISTS (SELECT FROM ${table} WHERE ${key} IN (SELECT ${key} FROM ${SUBJECT}) AND (${preservedSql(rule)})) THEN`,
      `  ${raise(GuardCode.preserveViolated, quoteLiteral(`a matched ${node.table.name} row is preserved by preserve rule ${rule.rule} (${oneLine(rule.where.text)})`))}`,
      'END IF;',
    );
  }
  body.push(reportRow(itemLabel({ kind: 'subject' }), quoteLiteral(display(node.table)), "'matched'", '_matched', 'NULL'));
  return doBlock('guard', ['_matched bigint;'], body);
}
