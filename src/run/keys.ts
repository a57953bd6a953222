import type postgres from 'postgres';
import { InvalidPolicyError } from '../core/errors.js';
import { qualified } from '../core/names.js';
import { loadPolicyFile, locate } from '../load/loadPolicy.js';
import type { Keyset, Plan } from '../plan/nodes.js';
import { batchedSteps } from '../plan/batchPlan.js';
import { describe } from '../validate/schema.js';

/**
 * The primary key of each batched step's table, read from pg_index (partitioned tables too),
 * the columns in index order with their types. A batched step whose table has no primary key
 * (or does not exist) is an error at the step's `batch:` in the policy, file:line:col: keyset
 * order needs a unique, not-null key.
 */
export interface TableKey {
  readonly columns: Keyset['columns'];
  /** Not partitioned: a tuple id names one row. */
  readonly plain: boolean;
}

export async function batchKeys(sql: postgres.Sql, plan: Plan): Promise<ReadonlyMap<number, TableKey>> {
  const keys = new Map<number, TableKey>();
  const problems: { path: readonly (string | number)[]; message: string }[] = [];
  for (const step of batchedSteps(plan)) {
    const table = qualified(step.table);
    const [exists] = await sql<{ oid: string | null; plain: boolean | null }[]>`
      SELECT c.oid::text AS oid, c.relkind = 'r' AS plain FROM (SELECT to_regclass(${table}) AS t) r LEFT JOIN pg_class c ON c.oid = r.t`;
    if (!exists?.oid) {
      problems.push({ path: step.batch!.source, message: `table ${table} does not exist in this database` });
      continue;
    }
    const columns = await sql<{ name: string; type: string }[]>`
      SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type
      FROM pg_index i
      CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k (attnum, ord)
      JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
      WHERE i.indrelid = ${exists.oid}::oid AND i.indisprimary
      ORDER BY k.ord`;
    if (!columns.length) {
      problems.push({ path: step.batch!.source, message: `${table} has no primary key: a batched step deletes in keyset order of the table's primary key (add one, or remove batch:)` });
      continue;
    }
    keys.set(step.step, { columns: columns.map((c) => ({ name: c.name, type: c.type })), plain: Boolean(exists.plain) });
  }
  if (problems.length) {
    const file = await loadPolicyFile(plan.source.path);
    throw new InvalidPolicyError(problems.map((p) => ({ ...locate(file, p.path), message: `${describe(p.path)}: ${p.message}` })));
  }
  return keys;
}
