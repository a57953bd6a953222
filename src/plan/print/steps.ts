import { display, qualified } from '../../compile/compile.js';
import { quoteLiteral } from '../../sql/quote.js';
import { GuardCode, itemLabel, type StepNode } from '../nodes.js';
import { doBlock, flagRead, indentFormatted, preservedSql, raise, reportRow } from '../sql.js';

/**
 * What a step's DELETE removes: its where and its table's preserve exclusions ('' for every
 * row). A backup copies exactly these rows; the runner locks them parents first.
 */
export function stepCondition(step: StepNode): string {
  const keepOut = step.keep.length ? step.keep.map((r) => `(${preservedSql(r)}) IS NOT TRUE`).join(' AND ') : undefined;
  return [step.where ? `(${step.where.sql})` : undefined, keepOut].filter(Boolean).join(' AND ');
}

function whereClause(step: StepNode): string {
  const condition = stepCondition(step);
  return condition ? ` WHERE ${condition}` : '';
}

/** `remove`: count, check max_rows, DELETE, compare, report; otherwise the dry run's count and report. */
export function step(node: StepNode, remove: boolean): string {
  const n = node.step;
  const table = qualified(node.table);
  const target = quoteLiteral(display(node.table));
  const item = itemLabel({ kind: 'step', step: n });
  const where = whereClause(node);
  const body: string[] = [];
  if (node.optional) {
    body.push(`IF to_regclass(${quoteLiteral(table)}) IS NULL THEN`, `  ${reportRow(item, target, "'absent'", 'NULL', "'optional table is absent; skipped'")}`, '  RETURN;', 'END IF;');
  }
  if (node.flag) {
    body.push(`IF NOT ${flagRead(node.flag)} THEN`, `  ${reportRow(item, target, "'skipped'", 'NULL', quoteLiteral(`flag ${node.flag} is not set`))}`, '  RETURN;', 'END IF;');
  }
  body.push(indentFormatted(`SELECT count(*) INTO _counted FROM ${table}${where};`));
  if (node.maxRows !== undefined) {
    body.push(
      `IF _counted > ${node.maxRows} THEN`,
      `  ${raise(GuardCode.tooManyRows, `format(${quoteLiteral(`step ${n} (${display(node.table)}) would remove %s rows, more than its max_rows ${node.maxRows}`)}, _counted)`)}`,
      'END IF;',
    );
  }
  if (!remove) return doBlock('step', ['_counted bigint;'], [...body, reportRow(item, target, "'would remove'", '_counted', 'NULL')]);
  body.push(
    indentFormatted(`DELETE FROM ${table}${where};`),
    'GET DIAGNOSTICS _removed = ROW_COUNT;',
    'IF _removed <> _counted THEN',
    `  ${raise(GuardCode.countMismatch, `format(${quoteLiteral(`step ${n} (${display(node.table)}) removed %s rows but counted %s just before`)}, _removed, _counted)`)}`,
    'END IF;',
    reportRow(item, target, "'removed'", '_removed', 'NULL'),
  );
  return doBlock('step', ['_counted bigint;', '_removed bigint;'], body);
}

export function stepProbe(node: StepNode): string {
  return `DELETE FROM ${qualified(node.table)}${whereClause(node)}`;
}
