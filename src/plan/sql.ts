import { quoteIdent, quoteLiteral } from '../sql/quote.js';
import type { PreserveCondition } from './nodes.js';

/**
 * The script's working tables and the small pieces of SQL every printer uses.
 *
 * State the script needs lives in temporary tables in pg_temp, always named with the pg_temp
 * prefix so that no table of the database can stand in for them:
 *   purgekit_params   the one parameter block (filled in by hand, by `render`, or bound by the runner)
 *   purgekit_subject  the keys being purged (purge only)
 *   purgekit_report   one row per step and check; the closing result set; it outlives COMMIT so
 *                     that the final SELECT can show it. The others are ON COMMIT DROP.
 * and pg_temp.purgekit_raise(code, message), through which every guard raises.
 */
export const PARAMS = 'pg_temp.purgekit_params';
export const SUBJECT = 'pg_temp.purgekit_subject';
export const REPORT = 'pg_temp.purgekit_report';
export { WIPE_REACH as REACH } from '../graph/truncate.js';
export const SETTINGS = 'pg_temp.purgekit_settings';

/** The report's columns, as the runner reads them back (RETURNING, or a SELECT after a DO block). */
export const REPORT_COLUMNS = 'item, target, outcome, rows, detail';

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

/** The report row a DO block writes (PL/pgSQL). */
export function reportRow(item: string, target: string, outcome: string, rows: string, detail: string): string {
  return `INSERT INTO ${REPORT} (item, target, outcome, rows, detail) VALUES (${quoteLiteral(item)}, ${target}, ${outcome}, ${rows}, ${detail});`;
}

/** RAISE with one of the script's SQLSTATEs inside a DO block; `message` is SQL (a literal, format(), ...). */
export function raise(code: string, message: string): string {
  return `RAISE EXCEPTION USING ERRCODE = '${code}', MESSAGE = ${message};`;
}

/** The same as an SQL expression (of type bigint, so that it can stand in for a count); `message` is SQL. */
export function raiseCall(code: string, message: string): string {
  return `pg_temp.purgekit_raise('${code}', ${message})`;
}

/**
 * A DO block, for what plain SQL cannot say (a table that may not exist, a loop over the
 * catalog). Columns win over PL/pgSQL's variables (#variable_conflict use_column) so author SQL
 * means what it says, and declared variables carry a leading underscore.
 */
export function doBlock(tag: string, declarations: readonly string[], body: readonly string[]): string {
  const text = [
    '#variable_conflict use_column',
    ...(declarations.length ? ['DECLARE', ...declarations.map((d) => `  ${d}`)] : []),
    'BEGIN',
    ...body.map((b) => indent(b, 2)),
    'END',
  ].join('\n');
  let quote = `$${tag}$`;
  for (let n = 2; text.includes(quote); n++) quote = `$${tag}${n}$`;
  return `DO ${quote}\n${text}\n${quote}`;
}

export function indent(text: string, spaces: number): string {
  const pad = ' '.repeat(spaces);
  return text
    .split('\n')
    .map((line) => (line ? pad + line : line))
    .join('\n');
}

/**
 * A WHERE clause laid out by hand, one condition a line (`WHERE a` / `  AND b`), at `pad`
 * spaces. A condition of several lines (the author's, as written) hangs under its first line.
 */
export function whereClause(conditions: readonly string[], pad: number): string {
  const margin = ' '.repeat(pad);
  return conditions.map((c, i) => `${margin}${i === 0 ? 'WHERE' : '  AND'} ${c.split('\n').join(`\n${margin}      `)}`).join('\n');
}

/** Rows deleted or updated in a table (and all its partitions) so far in this transaction. */
export function changesOf(table: string): string {
  // pg_partition_tree() is empty for a table that is not partitioned, hence the table itself too.
  const name = quoteLiteral(table);
  // The functions behind pg_stat_xact_user_tables, called for just these tables: planning the
  // whole view costs more than the check.
  return `(SELECT coalesce(sum(pg_stat_get_xact_tuples_deleted(t) + pg_stat_get_xact_tuples_updated(t)), 0) FROM (SELECT ${name}::regclass UNION SELECT relid FROM pg_partition_tree(${name})) AS tables (t))`;
}
