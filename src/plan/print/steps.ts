import { qualified } from '../../core/names.js';
import { quoteLiteral } from '../../sql/quote.js';
import { GuardCode, itemLabel, type AnyStepNode, type StepNode } from '../nodes.js';
import { doBlock, flagRead, preservedSql, raiseCall, REPORT, REPORT_COLUMNS, whereClause } from '../sql.js';

/**
 * What a step's DELETE removes (or an update step's UPDATE changes): its where and its table's
 * preserve exclusions ('' for every row). A backup copies exactly these rows; the runner locks
 * them parents first.
 */
export function stepCondition(step: AnyStepNode): string {
  const keepOut = step.keep.length ? step.keep.map((r) => `(${preservedSql(r)}) IS NOT TRUE`).join(' AND ') : undefined;
  return [step.where ? `(${step.where.sql})` : undefined, keepOut].filter(Boolean).join(' AND ');
}

/** The DELETE's conditions, one a line: the author's where alone stays exactly as written. */
export function conditions(step: AnyStepNode): string[] {
  const keepOut = step.keep.map((r) => `(${preservedSql(r)}) IS NOT TRUE`);
  const flag = step.flag ? [flagRead(step.flag)] : [];
  if (step.where && !keepOut.length && !flag.length) return [step.where.sql];
  return [...flag, ...(step.where ? [`(${step.where.sql})`] : []), ...keepOut];
}

export function whereLines(step: AnyStepNode, pad: number): string {
  const all = conditions(step);
  return all.length ? `\n${whereClause(all, pad)}` : '';
}

/**
 * A step as one statement: the DELETE, and its report row counted from what it returned (no
 * second scan). More than max_rows raises PK009 and the transaction rolls back. With a flag
 * that is not set, nothing is deleted (the flag is part of the DELETE's WHERE) and the row says
 * skipped. `remove` false: the dry run's count of what it would remove, with the same checks.
 * An optional step is a DO block: a table that does not exist cannot even be named in plain SQL.
 */
export function step(node: StepNode, remove: boolean): string {
  const table = qualified(node.table);
  const change = remove ? { cte: 'removed', sql: `  DELETE FROM ${table}${whereLines(node, 2)}` } : undefined;
  return stepStatement(node, change, remove ? 'removed' : 'would remove');
}

/**
 * The statement of a delete or update step: `change` (the DELETE or UPDATE, in a CTE named
 * `cte`, laid out at 2 spaces, that returns one row per changed row) counted into the step's report row; without it,
 * the dry run's count of the rows it would change.
 */
export function stepStatement(node: AnyStepNode, change: { readonly cte: string; readonly sql: string } | undefined, outcome: string): string {
  const table = qualified(node.table);
  const source = change ? `WITH ${change.cte} AS (\n${change.sql}\n  RETURNING 1\n)\n` : '';
  const from = change ? change.cte : `${table}${whereLines(node, 0)}`;
  const columns = node.flag ? REPORT_COLUMNS : 'item, target, outcome, rows';
  const statement = `${source}INSERT INTO ${REPORT} (${columns})\n${reportSelect(node, outcome, from)}`;
  if (!node.optional) return statement;
  const label = itemLabel({ kind: 'step', step: node.step });
  return doBlock('step', [], [
    `IF to_regclass(${quoteLiteral(table)}) IS NULL THEN`,
    `  INSERT INTO ${REPORT} (item, target, outcome, detail) VALUES (${quoteLiteral(label)}, ${quoteLiteral(qualified(node.table))}, 'absent', 'optional table is absent; skipped');`,
    '  RETURN;',
    'END IF;',
    `${statement};`,
  ]);
}

/** The step's report row: what it removed (or would), checked against max_rows; skipped when its flag is off. */
function reportSelect(node: AnyStepNode, outcome: string, from: string): string {
  const label = `${quoteLiteral(itemLabel({ kind: 'step', step: node.step }))}, ${quoteLiteral(qualified(node.table))}`;
  const verb = node.kind === 'step' ? 'remove' : 'update';
  const rows =
    node.maxRows === undefined
      ? 'count(*)'
      : `CASE WHEN count(*) > ${node.maxRows} THEN ${raiseCall(GuardCode.tooManyRows, `format(${quoteLiteral(`step ${node.step} (${qualified(node.table)}) would ${verb} %s rows, more than its max_rows ${node.maxRows}`)}, count(*))`)} ELSE count(*) END`;
  if (!node.flag) return `SELECT ${label}, '${outcome}', ${rows} FROM ${from}`;
  const flag = flagRead(node.flag);
  return [
    `SELECT ${label}, '${outcome}', ${rows}, NULL FROM ${from}`,
    `HAVING ${flag}`,
    'UNION ALL',
    `SELECT ${label}, 'skipped', NULL, ${quoteLiteral(`flag ${node.flag} is not set`)} WHERE NOT ${flag}`,
  ].join('\n');
}

export function stepProbe(node: StepNode): string {
  const condition = stepCondition(node);
  return `DELETE FROM ${qualified(node.table)}${condition ? ` WHERE ${condition}` : ''}`;
}
