import { formatSql, indent } from '../sql/format.js';
import { quoteIdent, quoteLiteral } from '../sql/quote.js';
import type { PreserveCondition } from './nodes.js';

/**
 * The script's working tables and the small pieces of SQL and PL/pgSQL every printer uses.
 *
 * State the script needs lives in temporary tables in pg_temp, always named with the pg_temp
 * prefix so that no table of the database can stand in for them:
 *   purgekit_params   the one parameter block (filled in by hand, by `render`, or bound by the runner)
 *   purgekit_subject  the keys being purged (purge only)
 *   purgekit_report   one row per step and check; the closing result set; it outlives COMMIT so
 *                     that the final SELECT can show it. The others are ON COMMIT DROP.
 */
export const PARAMS = 'pg_temp.purgekit_params';
export const SUBJECT = 'pg_temp.purgekit_subject';
export const REPORT = 'pg_temp.purgekit_report';
export const REACH = 'pg_temp.purgekit_wipe_reach';
export const SETTINGS = 'pg_temp.purgekit_settings';

/** The working table of a named key set (sets:); set names are lowercase, so no quoting. */
export function setTable(name: string): string {
  return `pg_temp.purgekit_set_${name}`;
}

/** A flag's value, read from the parameter block (a boolean, never NULL). */
export function flagRead(name: string): string {
  return `(SELECT ${quoteIdent(name)} FROM ${PARAMS})`;
}

/** A preserve rule's condition; with `if:`, true only while its flag is set. */
export function preservedSql(p: PreserveCondition): string {
  return p.flag ? `${flagRead(p.flag)} AND (${p.where.sql})` : p.where.sql;
}

export function reportRow(item: string, target: string, outcome: string, rows: string, detail: string): string {
  return `INSERT INTO ${REPORT} (item, target, outcome, rows, detail) VALUES (${quoteLiteral(item)}, ${target}, ${outcome}, ${rows}, ${detail});`;
}

/** RAISE with one of the script's SQLSTATEs; `message` is SQL (a literal, format(), ...). */
export function raise(code: string, message: string): string {
  return `RAISE EXCEPTION USING ERRCODE = '${code}', MESSAGE = ${message};`;
}

/**
 * A DO block. The body is PL/pgSQL laid out here; SQL inside it comes formatted. Columns win over
 * the block's variables (#variable_conflict use_column) so author SQL means what it says, and the
 * variables carry a leading underscore to make a clash unlikely in the first place.
 */
export function doBlock(tag: string, declarations: readonly string[], body: readonly string[]): string {
  const text = ['#variable_conflict use_column', 'DECLARE', ...declarations.map((d) => `  ${d}`), 'BEGIN', ...body.map((b) => indent(b, 2)), 'END'].join('\n');
  let quote = `$${tag}$`;
  for (let n = 2; text.includes(quote); n++) quote = `$${tag}${n}$`;
  return `DO ${quote}\n${text}\n${quote}`;
}

/** Format one SQL statement (with its PL/pgSQL INTO or assignment kept on the first line). */
export function indentFormatted(statement: string): string {
  const body = statement.replace(/;$/, '');
  const assign = body.match(/^(_\w+ := )\((.*)\)$/s);
  if (assign) return `${assign[1]}(\n${indent(formatSql(assign[2]!), 2)}\n);`;
  return `${formatSql(body)};`;
}

/** Rows deleted or updated in a table (and all its partitions) so far in this transaction. */
export function changesOf(table: string): string {
  // pg_partition_tree() is empty for a table that is not partitioned, hence the table itself too.
  const name = quoteLiteral(table);
  // The functions behind pg_stat_xact_user_tables, called for just these tables: planning the
  // whole view costs more than the check.
  return `(SELECT coalesce(sum(pg_stat_get_xact_tuples_deleted(t) + pg_stat_get_xact_tuples_updated(t)), 0) FROM (SELECT ${name}::regclass UNION SELECT relid FROM pg_partition_tree(${name})) AS tables (t))`;
}
