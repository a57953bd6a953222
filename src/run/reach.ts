import type postgres from 'postgres';

/**
 * Tables that deleting from the steps' tables can change through foreign keys, read from
 * pg_catalog: ON DELETE CASCADE (followed transitively), SET NULL and SET DEFAULT. Partitions'
 * cloned constraints are folded into their partitioned root. Read-only, costs one catalog query.
 */
export interface Reach {
  readonly table: string;
  readonly from: string;
  readonly constraint: string;
  readonly action: 'cascade' | 'set null' | 'set default';
}

export async function cascadeReach(sql: postgres.Sql, stepTables: readonly string[]): Promise<Reach[]> {
  if (!stepTables.length) return [];
  const rows = await sql<{ table: string; from: string; constraint: string; action: string }[]>`
    WITH RECURSIVE fk AS (
      SELECT con.conrelid, con.confrelid, con.conname, con.confdeltype
      FROM pg_constraint con
      WHERE con.contype = 'f' AND con.conparentid = 0 AND con.confdeltype IN ('c', 'n', 'd')
    ), reach (relid, from_relid, conname, action, depth) AS (
      SELECT fk.conrelid, fk.confrelid, fk.conname, fk.confdeltype, 1
      FROM fk
      WHERE fk.confrelid IN (SELECT to_regclass(t) FROM unnest(${sql.array(stepTables as string[])}::text[]) AS t)
      UNION
      SELECT fk.conrelid, fk.confrelid, fk.conname, fk.confdeltype, r.depth + 1
      FROM reach r JOIN fk ON fk.confrelid = r.relid
      WHERE r.action = 'c' AND r.depth < 32
    )
    SELECT DISTINCT
      format('%I.%I', tn.nspname, t.relname) AS table,
      format('%I.%I', fn.nspname, f.relname) AS from,
      r.conname AS constraint,
      CASE r.action WHEN 'c' THEN 'cascade' WHEN 'n' THEN 'set null' ELSE 'set default' END AS action
    FROM reach r
    JOIN pg_class t ON t.oid = coalesce(pg_partition_root(r.relid), r.relid)
    JOIN pg_namespace tn ON tn.oid = t.relnamespace
    JOIN pg_class f ON f.oid = coalesce(pg_partition_root(r.from_relid), r.from_relid)
    JOIN pg_namespace fn ON fn.oid = f.relnamespace
    ORDER BY 1, 2, 3`;
  return rows.map((r) => ({ table: r.table, from: r.from, constraint: r.constraint, action: r.action as Reach['action'] }));
}

/**
 * Whether the reached table has a step of its own that runs no later than the first step on the
 * table it references (children first, as discover writes and lint's PK-L011 assumes; the same
 * step for a self-reference): then the cascade or SET NULL can only change rows that step leaves
 * behind, none when its where covers every row pointing at a removed one. `steps` is the plan's
 * step tables in run order.
 */
export function withOwnStep(reach: readonly Reach[], steps: readonly string[]): (Reach & { readonly ownStep: boolean })[] {
  return reach.map((r) => {
    const parent = steps.indexOf(r.from);
    const child = steps.indexOf(r.table);
    return { ...r, ownStep: parent >= 0 && child >= 0 && child <= parent };
  });
}
