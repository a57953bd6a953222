import { qualified } from '../../core/names.js';
import { quoteIdent, quoteLiteral } from '../../sql/quote.js';
import { GuardCode, type UpdateNode, type UpdateValue } from '../nodes.js';
import { PARAMS, raiseCall } from '../sql.js';
import { stepCondition, stepStatement, whereLines } from './steps.js';

/**
 * An update step (anonymize:, detach:) as one statement: the UPDATE of its rows, counted into
 * its report row ('updated') exactly as a delete step counts what it removed, with the same
 * where, flag, preserve exclusions and max_rows. `write` false: the dry run's count of the rows
 * it would update.
 */
export function update(node: UpdateNode, write: boolean): string {
  const change = write ? { cte: 'updated', sql: `  UPDATE ${qualified(node.table)}\n  SET ${assignments(node).join(',\n      ')}${whereLines(node, 2)}` } : undefined;
  return stepStatement(node, change, write ? 'updated' : 'would update');
}

/** One plain UPDATE that EXPLAIN can plan (lint): the columns, the new values' types, the where. */
export function updateProbe(node: UpdateNode): string {
  const condition = stepCondition(node);
  return `UPDATE ${qualified(node.table)} SET ${assignments(node).join(', ')}${condition ? ` WHERE ${condition}` : ''}`;
}

/** `column = value` for each column, in the order written. */
export function assignments(node: UpdateNode): string[] {
  return node.set.map((c) => `${quoteIdent(c.column)} = ${valueSql(c.column, c.value, node.step)}`);
}

/**
 * A new value as SQL. redact keeps the value's shape (letters become x, digits 0, the rest
 * stays); hash is sha256 over the secret key, a separator and the value, in hex: the same value
 * gets the same hash in every table (joins still line up) and nobody without the key can
 * recompute it. A missing or empty key stops the run (PK001) instead of hashing with nothing.
 * NULL stays NULL under both.
 */
export function valueSql(column: string, value: UpdateValue, step: number): string {
  const col = quoteIdent(column);
  switch (value.kind) {
    case 'null':
      return 'NULL';
    case 'default':
      return 'DEFAULT';
    case 'constant':
      return value.literal;
    case 'expression':
      return `(${value.sql.sql})`;
    case 'redact':
      return `regexp_replace(regexp_replace(${col}::text, '[[:alpha:]]', 'x', 'g'), '[[:digit:]]', '0', 'g')`;
    case 'hash': {
      const missing = raiseCall(GuardCode.noLookup, quoteLiteral(`step ${step}: the hash of ${column} needs its secret key, param ${value.key} (--${value.key.replaceAll('_', '-')}), and it is not given`));
      const key = `coalesce((SELECT nullif(${quoteIdent(value.key)}, '') FROM ${PARAMS}), ${missing}::text)`;
      return `encode(sha256(convert_to(${key} || ':' || ${col}::text, 'UTF8')), 'hex')`;
    }
  }
}
