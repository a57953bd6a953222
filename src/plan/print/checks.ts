import { display, oneLine, qualified } from '../../compile/compile.js';
import { quoteLiteral } from '../../sql/quote.js';
import { GuardCode, itemLabel, type ExpectNode, type PreserveCheckNode, type PreserveNode } from '../nodes.js';
import { changesOf, doBlock, flagRead, indentFormatted, preservedSql, raise, REPORT, reportRow } from '../sql.js';
import { wanted } from '../heading.js';

/** Expectations, preserve rules and the checks after the steps. */

export function expectation(node: ExpectNode): string {
  const failures = [
    node.equals !== undefined && `_value <> ${node.equals}`,
    node.min !== undefined && `_value < ${node.min}`,
    node.max !== undefined && `_value > ${node.max}`,
  ].filter(Boolean);
  const item = itemLabel({ kind: 'expect', expect: node.expect });
  const name = quoteLiteral(oneLine(node.name));
  return doBlock('expect', ['_value numeric;'], [
    ...(node.flag
      ? [`IF NOT ${flagRead(node.flag)} THEN`, `  ${reportRow(item, name, "'skipped'", 'NULL', quoteLiteral(`flag ${node.flag} is not set`))}`, '  RETURN;', 'END IF;']
      : []),
    indentFormatted(`_value := (${node.query.sql});`),
    reportRow(item, name, `CASE WHEN _value IS NULL OR ${failures.join(' OR ')} THEN 'failed' ELSE 'ok' END`, 'NULL', `format(${quoteLiteral(`value %s, wanted ${wanted(node)}`)}, coalesce(_value::text, 'NULL'))`),
  ]);
}

export function expectProbe(node: ExpectNode): string {
  return `SELECT (${node.query.sql})::numeric`;
}

/** Raise once for all failed expectations of a phase, so the message names every one. */
export const VERDICT = doBlock('check', ['_failed text;'], [
  "SELECT string_agg(format('%s (%s)', target, detail), '; ' ORDER BY seq) INTO _failed",
  `FROM ${REPORT} WHERE item LIKE 'expect %' AND outcome = 'failed';`,
  'IF _failed IS NOT NULL THEN',
  `  ${raise(GuardCode.expectFailed, "'expectation failed: ' || _failed")}`,
  'END IF;',
]);

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
  const label = `${quoteLiteral(itemLabel({ kind: 'preserve', rule: node.rule }))}, ${quoteLiteral(display(node.table))}, ${outcome}`;
  return node.counted
    ? `INSERT INTO ${REPORT} (item, target, outcome, rows, detail) SELECT ${label}, count(*), ${quoteLiteral(oneLine(c.where.text))} FROM ${table} WHERE ${preservedSql(c)}`
    : `INSERT INTO ${REPORT} (item, target, outcome, rows, detail, mark) SELECT ${label}, NULL, ${quoteLiteral(oneLine(c.where.text))}, ${changesOf(table)}`;
}

export function preserveProbe(node: PreserveNode): string {
  return `SELECT count(*) FROM ${qualified(node.table)} WHERE ${preservedSql(node.condition)}`;
}

export function preserveCheck(node: PreserveCheckNode): string {
  const table = qualified(node.table);
  const c = node.condition;
  const item = quoteLiteral(itemLabel({ kind: 'preserve', rule: node.rule }));
  const where = display(node.table);
  const body = node.counted
    ? [
        `SELECT rows INTO _before FROM ${REPORT} WHERE item = ${item};`,
        indentFormatted(`SELECT count(*) INTO _after FROM ${table} WHERE ${preservedSql(c)};`),
        'IF _after < _before THEN',
        `  ${raise(GuardCode.preserveViolated, `format(${quoteLiteral(`preserve rule ${node.rule} on ${where} violated: %s rows before, %s after`)}, _before, _after)`)}`,
        'END IF;',
      ]
    : [
        `SELECT ${changesOf(table)} - (SELECT mark FROM ${REPORT} WHERE item = ${item}) INTO _changed;`,
        `SELECT coalesce(sum(rows), 0) INTO _removed FROM ${REPORT} WHERE item LIKE 'step %' AND outcome = 'removed' AND target = ${quoteLiteral(where)};`,
        'IF _changed <> _removed THEN',
        `  ${raise(GuardCode.preserveViolated, `format(${quoteLiteral(`preserve rule ${node.rule} on ${where}: %s rows were deleted or updated there but the steps removed %s; a cascade or trigger changed others, and a preserved row may be among them`)}, _changed, _removed)`)}`,
        'END IF;',
      ];
  return doBlock('check', node.counted ? ['_before bigint;', '_after bigint;'] : ['_changed bigint;', '_removed bigint;'], [
    ...(c.flag ? [`IF NOT ${flagRead(c.flag)} THEN`, '  RETURN;', 'END IF;'] : []),
    ...body,
  ]);
}

export const KEEP_CHECK = doBlock('check', ['_table record;', '_rows bigint;'], [
  `FOR _table IN SELECT target, rows FROM ${REPORT} WHERE item = '${itemLabel({ kind: 'keep' })}' ORDER BY seq LOOP`,
  "  EXECUTE format('SELECT count(*) FROM %s', _table.target) INTO _rows;",
  '  IF _rows < _table.rows THEN',
  `    ${raise(GuardCode.preserveViolated, "format('keep table %s lost rows: %s before the wipe, %s after', _table.target, _table.rows, _rows)")}`,
  '  END IF;',
  'END LOOP;',
]);
