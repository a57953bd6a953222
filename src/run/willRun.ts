import type postgres from 'postgres';
import type { AnyStepNode, Plan } from '../plan/nodes.js';
import { allSteps } from '../plan/query.js';
import { qualified } from '../core/names.js';
import { quoteLiteral } from '../sql/quote.js';
import type { RunValues } from '../values.js';

/** A step runs unless its flag is off or its optional table is absent. */
export async function willRun(tx: postgres.TransactionSql, plan: Plan, step: AnyStepNode, values: RunValues): Promise<boolean> {
  return stepWillRun(plan, step, values, step.optional ? await optionalTables(tx, plan) : new Set());
}

export function stepWillRun(plan: Plan, step: AnyStepNode, values: RunValues, present: ReadonlySet<string>): boolean {
  const flag = step.flag ? plan.flags.find((f) => f.name === step.flag) : undefined;
  if (flag && !(values.flags.get(flag.name) ?? flag.default)) return false;
  return !step.optional || present.has(qualified(step.table));
}

/** Which of the plan's optional steps' tables exist (one query; none when no step is optional). */
export async function optionalTables(tx: postgres.TransactionSql, plan: Plan): Promise<ReadonlySet<string>> {
  const names = [...new Set(allSteps(plan).filter((s) => s.optional).map((s) => qualified(s.table)))];
  if (!names.length) return new Set();
  // Names from the plan, quoted as literals: no bound value, so the query is a simple one that
  // keeps its place among the pipelined statements.
  const rows = await tx.unsafe<{ name: string }[]>(`SELECT name FROM unnest(ARRAY[${names.map(quoteLiteral).join(', ')}]) AS name WHERE to_regclass(name) IS NOT NULL`);
  return new Set(rows.map((r) => r.name));
}

/** Whether `if: <flag>` holds for this run: its value as given, else its default (unknown: off). */
export function flagIsSet(flags: readonly { readonly name: string; readonly default: boolean }[], values: RunValues, name: string): boolean {
  return values.flags.get(name) ?? flags.find((f) => f.name === name)?.default ?? false;
}
