import type postgres from 'postgres';
import { fkKey } from './graph.js';

/**
 * Foreign keys declared DEFERRABLE INITIALLY DEFERRED: PostgreSQL checks them at COMMIT, so the
 * order of the steps does not matter for them (PK-L003). The catalog module does not carry
 * condeferred; read here, keyed like fkKey() (constraints of partitions folded into their root).
 */
export async function readDeferred(sql: postgres.Sql): Promise<Set<string>> {
  const rows = await sql<{ table: string; name: string }[]>`
    SELECT format('%I.%I', n.nspname, c.relname) AS table, con.conname AS name
    FROM pg_constraint con
    JOIN pg_class c ON c.oid = coalesce(pg_partition_root(con.conrelid), con.conrelid)
    JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE con.contype = 'f' AND con.condeferred AND con.conparentid = 0`;
  return new Set(rows.map(fkKey));
}
