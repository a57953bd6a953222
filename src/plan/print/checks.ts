import { oneLine, qualified } from '../../core/names.js';
import { quoteLiteral } from '../../sql/quote.js';
import { GuardCode, itemLabel, type ExpectNode, type PreserveCheckNode, type PreserveNode } from '../nodes.js';
import { changesOf, doBlock, flagRead, indent, preservedSql, raise, raiseCall, REPORT } from '../sql.js';
import { wanted } from '../heading.js';

/** Expectations, preserve rules and the checks after the steps. */

/** An expectation's value into the report, ok or failed; the verdict after them raises. */
export function expectation(node: ExpectNode): string {
  const failures = [
    node.equals !== undefined && `value <> ${node.equals}`,
    node.min !== undefined && `value < ${node.min}`,
    node.max !== undefined && `value > ${node.max}`,
  ].filter(Boolean);
  const label = `${quoteLiteral(itemLabel({ kind: 'expect', expect: node.expect }))}, ${quoteLiteral(oneLine(node.name))}`;
  const outcome = `WHEN value IS NULL OR ${failures.join(' OR ')} THEN 'failed' ELSE 'ok' END`;
  const detail = `format(${quoteLiteral(`value %s, wanted ${wanted(node)}`)}, coalesce(value::text, 'NULL'))`;
  const query = `(\n${indent(node.query.sql, 2)}\n)::numeric`;
  // With a flag that is not set, the query is not run at all (CASE evaluates only the branch it takes).
  const select = node.flag
    ? `SELECT ${label}, CASE WHEN NOT ${flagRead(node.flag)} THEN 'skipped' ${outcome}, CASE WHEN NOT ${flagRead(node.flag)} THEN ${quoteLiteral(`flag ${node.flag} is not set`)} ELSE ${detail} END\nFROM (SELECT CASE WHEN ${flagRead(node.flag)} THEN ${query} END AS value) AS measured`
    : `SELECT ${label}, CASE ${outcome}, ${detail}\nFROM (SELECT ${query} AS value) AS measured`;
  return `INSERT INTO ${REPORT} (item, target, outcome, detail)\n${select}`;
}

export function expectProbe(node: ExpectNode): string {
  return `SELECT (${node.query.sql})::numeric`;
}

/** Raise once for all failed expectations of a phase, so the message names every one. */
export const VERDICT = [
  `SELECT ${raiseCall(GuardCode.expectFailed, "'expectation failed: ' || string_agg(format('%s (%s)', target, detail), '; ' ORDER BY seq)")}`,
  `FROM ${REPORT} WHERE item LIKE 'expect %' AND outcome = 'failed'`,
  'HAVING count(*) > 0',
].join('\n');

/**
 * A preserve rule is checked without counting its table: the steps' deletes exclude preserved
 * rows, so if the table lost exactly the rows the steps removed and nothing in it was updated,
 * no preserved row can be gone. pg_stat_xact_user_tables, read inside this transaction before
 * and after the steps, says what the table lost, cascades and triggers included; the check
 * costs the same on a table of ten rows or ten million. Only when a step declares a cascade
 * into the table (so other deletes there are expected) are the preserved rows counted.
 */
export function preserve(node: PreserveNode): string {
  const table = qualified(node.table);
  const c = node.condition;
  // A rule whose flag is not set is reported as skipped, and its check after the steps does nothing.
  const outcome = c.flag ? `CASE WHEN ${flagRead(c.flag)} THEN 'preserved' ELSE 'skipped' END` : "'preserved'";
  const label = `${quoteLiteral(itemLabel({ kind: 'preserve', rule: node.rule }))}, ${quoteLiteral(qualified(node.table))}, ${outcome}`;
  const text = quoteLiteral(oneLine(c.where.text));
  return node.counted
    ? `INSERT INTO ${REPORT} (item, target, outcome, rows, detail)\nSELECT ${label}, count(*), ${text} FROM ${table} WHERE ${preservedSql(c)}`
    : `INSERT INTO ${REPORT} (item, target, outcome, detail, mark)\nSELECT ${label}, ${text},\n  ${changesOf(table)}`;
}

export function preserveProbe(node: PreserveNode): string {
  return `SELECT count(*) FROM ${qualified(node.table)} WHERE ${preservedSql(node.condition)}`;
}

export function preserveCheck(node: PreserveCheckNode): string {
  const table = qualified(node.table);
  const c = node.condition;
  const item = quoteLiteral(itemLabel({ kind: 'preserve', rule: node.rule }));
  const where = qualified(node.table);
  const flag = c.flag ? `${flagRead(c.flag)} AND ` : '';
  return node.counted
    ? [
        `SELECT ${raiseCall(GuardCode.preserveViolated, `format(${quoteLiteral(`preserve rule ${node.rule} on ${where} violated: %s rows before, %s after`)}, before, after)`)}`,
        `FROM (SELECT (SELECT rows FROM ${REPORT} WHERE item = ${item}) AS before,`,
        `  (SELECT count(*) FROM ${table} WHERE ${preservedSql(c)}) AS after) AS preserved`,
        `WHERE ${flag}after < before`,
      ].join('\n')
    : [
        `SELECT ${raiseCall(GuardCode.preserveViolated, `format(${quoteLiteral(`preserve rule ${node.rule} on ${where}: %s rows were deleted or updated there but the steps removed %s; a cascade or trigger changed others, and a preserved row may be among them`)}, changed, removed)`)}`,
        `FROM (SELECT ${changesOf(table)} - (SELECT mark FROM ${REPORT} WHERE item = ${item}) AS changed,`,
        `  (SELECT coalesce(sum(rows), 0) FROM ${REPORT} WHERE item LIKE 'step %' AND outcome ${node.updatedBySteps ? "IN ('removed', 'updated')" : "= 'removed'"} AND target = ${quoteLiteral(where)}) AS removed) AS preserved`,
        `WHERE ${flag}changed <> removed`,
      ].join('\n');
}

export const KEEP_CHECK = doBlock('check', ['_table record;', '_rows bigint;'], [
  `FOR _table IN SELECT target, rows FROM ${REPORT} WHERE item = '${itemLabel({ kind: 'keep' })}' ORDER BY seq LOOP`,
  "  EXECUTE format('SELECT count(*) FROM %s', _table.target) INTO _rows;",
  '  IF _rows < _table.rows THEN',
  `    ${raise(GuardCode.preserveViolated, "format('keep table %s lost rows: %s before the wipe, %s after', _table.target, _table.rows, _rows)")}`,
  '  END IF;',
  'END LOOP;',
]);
