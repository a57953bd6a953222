import type postgres from 'postgres';
import type { ColumnKind, SearchColumn, SearchTable } from './types.js';

/**
 * Every table with a column that can hold an identifying value as text: text, varchar, char,
 * citext, json, jsonb, and arrays of the text types, domains over any of them included. Read
 * from pg_catalog with the role's privileges: a table it cannot read comes back with `readable`
 * false (the scan reports it as skipped, with why), a column it cannot read in skippedColumns.
 * Partitions are folded into their partitioned table (scanned once, through the parent).
 */
export interface CatalogTable extends SearchTable {
  readonly readable: boolean;
}

interface Row {
  table: string;
  schema: string;
  name: string;
  partitioned: boolean;
  readable: boolean;
  primary_key: string[] | null;
  bytes: string;
  rows: string;
  columns: { name: string; type: string; base: string; elem: string | null; readable: boolean; trigram: boolean; width: number | null }[] | null;
}

const TEXT_TYPES = new Set(['text', 'varchar', 'bpchar', 'citext']);

export async function searchableTables(sql: postgres.Sql, schemas?: readonly string[]): Promise<CatalogTable[]> {
  const rows = await sql<Row[]>`
    WITH RECURSIVE base (oid, base) AS (
      SELECT oid, oid FROM pg_type WHERE typtype <> 'd'
      UNION ALL
      SELECT t.oid, b.base FROM pg_type t JOIN base b ON t.typbasetype = b.oid WHERE t.typtype = 'd'
    ), typ AS (
      -- base: the type under any domains; elem: for an array, its element's base type
      SELECT b.oid, bt.typname AS base, eb_t.typname AS elem
      FROM base b
      JOIN pg_type bt ON bt.oid = b.base
      LEFT JOIN base eb ON eb.oid = bt.typelem AND bt.typcategory = 'A'
      LEFT JOIN pg_type eb_t ON eb_t.oid = eb.base
    )
    SELECT format('%I.%I', n.nspname, c.relname) AS table, n.nspname AS schema, c.relname AS name,
           c.relkind = 'p' AS partitioned,
           has_any_column_privilege(c.oid, 'SELECT') AS readable,
           (SELECT array_agg(a.attname ORDER BY k.i)
              FROM pg_index x CROSS JOIN LATERAL unnest(x.indkey) WITH ORDINALITY AS k(attnum, i)
              JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.attnum
             WHERE x.indrelid = c.oid AND x.indisprimary) AS primary_key,
           (SELECT coalesce(sum(p.relpages), 0)::bigint * current_setting('block_size')::bigint
              FROM pg_class p WHERE p.oid = c.oid OR p.oid IN (SELECT relid FROM pg_partition_tree(c.oid)))::text AS bytes,
           (SELECT CASE WHEN bool_and(p.reltuples < 0) THEN -1 ELSE sum(greatest(p.reltuples, 0)) END
              FROM pg_class p WHERE (p.oid = c.oid OR p.oid IN (SELECT relid FROM pg_partition_tree(c.oid))) AND p.relkind <> 'p')::bigint::text AS rows,
           (SELECT json_agg(json_build_object(
                     'name', a.attname, 'type', format_type(a.atttypid, a.atttypmod), 'base', typ.base, 'elem', typ.elem,
                     'readable', has_column_privilege(c.oid, a.attnum, 'SELECT'),
                     'trigram', EXISTS (SELECT FROM pg_index x CROSS JOIN LATERAL unnest(x.indkey::int2[]) WITH ORDINALITY AS k(attnum, i)
                                        JOIN pg_opclass oc ON oc.oid = x.indclass[k.i - 1]
                                        WHERE x.indrelid = c.oid AND k.attnum = a.attnum AND oc.opcname IN ('gin_trgm_ops', 'gist_trgm_ops')),
                     'width', (SELECT s.avg_width FROM pg_stats s WHERE s.schemaname = n.nspname AND s.tablename = c.relname AND s.attname = a.attname))
                   ORDER BY a.attnum)
              FROM pg_attribute a JOIN typ ON typ.oid = a.atttypid
             WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
               AND (typ.base IN ('text', 'varchar', 'bpchar', 'citext', 'json', 'jsonb') OR typ.elem IN ('text', 'varchar', 'bpchar', 'citext'))) AS columns
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p', 'm') AND NOT c.relispartition
      AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') AND n.nspname NOT LIKE 'pg\_temp\_%' AND n.nspname NOT LIKE 'pg\_toast\_temp\_%'
      ${schemas ? sql`AND n.nspname = ANY(${sql.array(schemas as string[])}::text[])` : sql``}
    ORDER BY n.nspname, c.relname`;
  return rows.flatMap((r) => {
    const all = r.columns ?? [];
    if (!all.length) return [];
    const columns: SearchColumn[] = all.filter((c) => c.readable).map((c) => ({ name: c.name, type: c.type, trigram: c.trigram, ...kindOf(c.base, c.elem, c.type) }));
    const readableWidths = all.filter((c) => c.readable).map((c) => c.width);
    const rowCount = Number(r.rows);
    return [
      {
        table: r.table,
        schema: r.schema,
        name: r.name,
        partitioned: r.partitioned,
        readable: r.readable,
        primaryKey: r.primary_key ?? [],
        columns,
        skippedColumns: all.filter((c) => !c.readable).map((c) => ({ column: c.name, reason: 'permission denied: the role may not read this column' })),
        bytes: Number(r.bytes),
        rows: rowCount,
        columnBytes: rowCount >= 0 && readableWidths.length && readableWidths.every((w) => w !== null) ? Math.round(rowCount * readableWidths.reduce((a, w) => a + w!, 0)) : null,
      },
    ];
  });
}

function kindOf(base: string, elem: string | null, type: string): { kind: ColumnKind; plain: boolean } {
  if (elem && TEXT_TYPES.has(elem)) return { kind: 'array', plain: false };
  if (base === 'json') return { kind: 'json', plain: false };
  if (base === 'jsonb') return { kind: 'jsonb', plain: type === 'jsonb' };
  // A plain text or varchar column is compared as it is, so a btree or trigram index on it answers.
  return { kind: 'text', plain: base === type || (base === 'varchar' && type.startsWith('character varying')) || (base === 'text' && type === 'text') };
}
