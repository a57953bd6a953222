import { qualified } from '../../core/names.js';
import { quoteIdent, quoteLiteral } from '../../sql/quote.js';
import { GuardCode, itemLabel, type ApplyOnlyNode, type Keyset, type StepNode } from '../nodes.js';
import { PARAMS, REPORT, whereClause } from '../sql.js';
import { conditions } from './steps.js';

/**
 * Batched cleanup (src/run/batched.ts). Two statements of their own:
 *
 *   applyOnly   the generated file's first statement after BEGIN when a step is batched: it
 *               raises PK012 at once, so that a file run by hand (psql, a SQL editor) changes
 *               nothing and its transaction is aborted; docs/FORMATS.md says why
 *   batchStep   one batch of a batched step as the runner sends it: up to batch_rows rows in
 *               keyset order of the table's primary key after the last committed key (both read
 *               from the parameter table, where the runner binds them), deleted, counted, and
 *               the batch's last key written to the report row's detail (JSON array of text)
 */

/** The parameter columns the runner adds for a batch (bound like every parameter, never spliced). */
export const BATCH_ROWS = 'purgekit_batch_rows';
export const BATCH_AFTER = 'purgekit_batch_after';

export function applyOnly(node: ApplyOnlyNode): string {
  const which = node.steps.length === 1 ? `step ${node.steps[0]} is` : `steps ${node.steps.join(', ')} are`;
  const message = `${node.policy}: ${which} batched (one transaction per batch); this file is for review and for purgekit apply only, and it has changed nothing. Run: purgekit apply ${node.policy}`;
  return `DO $apply_only$ BEGIN RAISE EXCEPTION USING ERRCODE = '${GuardCode.applyOnly}', MESSAGE = ${quoteLiteral(message)}; END $apply_only$`;
}

export function batchStep(node: StepNode): string {
  const keyset = node.batch?.keyset;
  if (!keyset) throw new Error(`step ${node.step} is batched: the runner prints its batch once it knows the table's primary key`);
  const table = qualified(node.table);
  const keys = keyset.columns.map((c) => quoteIdent(c.name));
  const tuple = keys.length === 1 ? keys[0]! : `(${keys.join(', ')})`;
  const where = [...conditions(node), ...(keyset.after ? [`${tuple} > ${afterKey(keyset)}`] : [])];
  const maxRows =
    node.maxRows === undefined
      ? 'count(*)'
      : `CASE WHEN count(*) > ${node.maxRows} THEN pg_temp.purgekit_raise('${GuardCode.tooManyRows}', format(${quoteLiteral(`step ${node.step} (${table}) would remove %s rows in this batch, more than the %s its max_rows leaves`)}, count(*), ${node.maxRows})) ELSE count(*) END`;
  // The batch's last key: max() in the same pass over what was removed (one column), else the last row in key order.
  const last =
    keys.length === 1
      ? `CASE WHEN count(*) > 0 THEN json_build_array(max(${keys[0]})::text)::text END`
      : `(SELECT json_build_array(${keys.map((k) => `${k}::text`).join(', ')})::text FROM removed ORDER BY ${keys.map((k) => `${k} DESC`).join(', ')} LIMIT 1)`;
  // A plain table's rows are deleted by their tuple id (a TID scan, no second walk of the key's
  // index); a partitioned table's by key (a tuple id is unique only within one partition).
  const byTid = keyset.tid;
  return [
    'WITH batch AS (',
    `  SELECT ${byTid ? 'ctid, ' : ''}${keys.join(', ')} FROM ${table}`,
    ...(where.length ? [whereClause(where, 2)] : []),
    `  ORDER BY ${keys.join(', ')}`,
    `  LIMIT (SELECT ${BATCH_ROWS} FROM ${PARAMS})`,
    '), removed AS (',
    // = ANY (ARRAY(...)): the batch's keys as one array, found through the key's index; a join with
    // the CTE (whose LIMIT the planner cannot see) was planned as a hash join over the whole table.
    // The step's conditions again: a row a concurrent writer changed since the SELECT is re-checked
    // on its new version (EvalPlanQual) and kept if it no longer matches. No FOR UPDATE before:
    // it would write every row twice.
    byTid
      ? `  DELETE FROM ${table} WHERE ctid = ANY (ARRAY(SELECT ctid FROM batch))`
      : keys.length === 1
      ? `  DELETE FROM ${table} WHERE ${keys[0]} = ANY (ARRAY(SELECT ${keys[0]} FROM batch))`
      : `  DELETE FROM ${table} WHERE ${tuple} IN (SELECT ${keys.join(', ')} FROM batch)`,
    ...(conditions(node).length ? [whereClause(conditions(node), 4).replace(/^ {4}WHERE/, '      AND')] : []),
    `  RETURNING ${keys.join(', ')}`,
    ')',
    `INSERT INTO ${REPORT} (item, target, outcome, rows, detail)`,
    `SELECT ${quoteLiteral(itemLabel({ kind: 'step', step: node.step }))}, ${quoteLiteral(table)}, 'removed', ${maxRows}, ${last} FROM removed`,
  ].join('\n');
}

/** The last committed key, one scalar subquery per column (so that the comparison can use the key's index). */
function afterKey(keyset: Keyset): string {
  const column = (i: number, type: string) => `(SELECT (${BATCH_AFTER}::jsonb->>${i})::${type} FROM ${PARAMS})`;
  const parts = keyset.columns.map((c, i) => column(i, c.type));
  return parts.length === 1 ? parts[0]! : `(${parts.join(', ')})`;
}

/** The step's heading lines in the generated file. */
export function batchNotes(node: StepNode): string[] {
  const b = node.batch;
  if (!b) return [];
  const size = b.rows !== undefined ? `${b.rows} rows per batch${b.maxBatchMs !== undefined ? ` at first, then adapted toward ${b.maxBatchMs} ms per batch` : ''}` : `rows per batch adapted toward ${b.maxBatchMs} ms per batch`;
  return [`Batched: purgekit apply deletes these rows in primary-key order, ${size}, one transaction each, until none match. By hand this file refuses to run (see its first statement).`];
}
