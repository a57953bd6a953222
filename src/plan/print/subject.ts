import { qualified } from '../../core/names.js';
import type { TableName } from '../../policy.js';
import { quoteIdent } from '../../sql/quote.js';
import type { LookupNode, SetFillNode } from '../nodes.js';
import { PARAMS, setTable, SUBJECT, whereClause } from '../sql.js';
import { given } from './guards.js';

/** The subject's keys and the named key sets: working tables filled (and locked) before any step. */

export function subjectTable(table: TableName, key: string): string {
  return `CREATE TEMP TABLE purgekit_subject ON COMMIT DROP AS\nSELECT ${quoteIdent(key)} FROM ${qualified(table)} WITH NO DATA`;
}

/** A lookup's INSERT, gated on its parameters; `lock` adds FOR UPDATE (a dry run only reads). */
export function lookup(node: LookupNode, lock: boolean): string {
  const applies = [...node.earlier.map((by) => `NOT (${given(by)})`), given(node.by)].join(' AND ');
  return [
    `INSERT INTO ${SUBJECT}`,
    `SELECT ${quoteIdent(node.key)} FROM ${qualified(node.table)}`,
    whereClause([`(SELECT ${applies} FROM ${PARAMS})`, `(${node.where.sql})`], 0),
    ...(lock ? ['FOR UPDATE'] : []),
  ].join('\n');
}

export function lookupProbe(node: LookupNode): string {
  return `SELECT ${quoteIdent(node.key)} FROM ${qualified(node.table)} WHERE ${node.where.sql}`;
}

export function analyze(table: string): string {
  return `ANALYZE ${table}`;
}

export function setTableSql(name: string, table: TableName, key: readonly string[]): string {
  return `CREATE TEMP TABLE purgekit_set_${name} ON COMMIT DROP AS\nSELECT ${key.map(quoteIdent).join(', ')} FROM ${qualified(table)} WITH NO DATA`;
}

/**
 * A named key set: captured once, before any step, and read by later SQL as :name. Its rows
 * are locked like the subject's, so what the set names cannot change until COMMIT.
 */
export function setFill(node: SetFillNode, lock: boolean): string {
  const insert = `INSERT INTO ${setTable(node.name)}\nSELECT ${node.key.map(quoteIdent).join(', ')} FROM ${qualified(node.table)}\n${whereClause([node.where.sql], 0)}`;
  return lock ? `${insert}\nFOR UPDATE` : insert;
}

export function setProbe(node: SetFillNode): string {
  return `SELECT ${node.key.map(quoteIdent).join(', ')} FROM ${qualified(node.table)} WHERE ${node.where.sql}`;
}
