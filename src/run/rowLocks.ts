import type postgres from 'postgres';
import type { Plan } from '../plan/nodes.js';
import { steps } from '../plan/query.js';
import { qualified } from '../core/names.js';
import { quoteLiteral } from '../sql/quote.js';

/**
 * The step tables whose rows the runner locks before the first delete: those some foreign key
 * references (the table itself, a partition of it or a table it is a partition of). The locks
 * exist so that a child inserted under a row a later step deletes waits for the run instead of
 * failing that step's foreign key; no child can be inserted under a row of a table nothing
 * references, and locking those rows only scanned them once more (on a heavy purge, 40% of the
 * transaction: README, Performance). One query, sent at the start; its answer is read when the
 * locks are sent.
 */
export async function referencedTables(tx: postgres.TransactionSql, plan: Plan): Promise<ReadonlySet<string>> {
  const names = [...new Set(steps(plan).map((s) => qualified(s.table)))];
  if (!names.length) return new Set();
  // Names from the plan, quoted as literals: a simple query that keeps its place in the pipeline.
  const rows = await tx.unsafe<{ name: string }[]>(`SELECT name FROM unnest(ARRAY[${names.map(quoteLiteral).join(', ')}]) AS name
WHERE EXISTS (SELECT FROM pg_constraint c
              WHERE c.contype = 'f'
                AND (c.confrelid = to_regclass(name)
                     -- (both are empty for a table that is neither partitioned nor a partition)
                     OR c.confrelid IN (SELECT relid FROM pg_partition_tree(to_regclass(name))
                                        UNION SELECT relid FROM pg_partition_ancestors(to_regclass(name)))))`);
  return new Set(rows.map((r) => r.name));
}
