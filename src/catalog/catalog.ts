import type postgres from 'postgres';

/**
 * The live schema, read from pg_catalog (not information_schema alone: it hides partitions,
 * ON DELETE actions of constraints the role does not own, and index column order).
 *
 * Names are keyed as SQL spells them qualified, schema.table with quote_ident rules
 * (`public."User"`), the same form the compiler and the runner use. Partitions are rolled up:
 * a partitioned table is one table here, its foreign keys and references are those of the parent.
 */
export type OnDelete = 'no action' | 'restrict' | 'cascade' | 'set null' | 'set default';

export interface Column {
  readonly name: string;
  readonly type: string;
  readonly nullable: boolean;
}

export interface Index {
  readonly name: string;
  /** Key columns in order; null for an expression. */
  readonly columns: readonly (string | null)[];
  readonly unique: boolean;
  readonly partial: boolean;
}

export interface Table {
  /** schema.table, quoted as SQL needs. */
  readonly qualified: string;
  readonly schema: string;
  readonly name: string;
  readonly partitioned: boolean;
  /** Qualified names of its partitions (all levels), empty unless partitioned. */
  readonly partitions: readonly string[];
  readonly columns: readonly Column[];
  readonly indexes: readonly Index[];
  /** The planner's estimate (pg_class.reltuples, summed over partitions); -1 if never analyzed. */
  readonly estimatedRows: number;
}

export interface ForeignKey {
  readonly name: string;
  /** The referencing table (rolled up to its partitioned root). */
  readonly table: string;
  readonly columns: readonly string[];
  /** The referenced table (rolled up to its partitioned root). */
  readonly references: string;
  readonly referencedColumns: readonly string[];
  readonly onDelete: OnDelete;
  /** Some referencing column may be NULL: a cycle can be broken by setting it NULL first. */
  readonly nullable: boolean;
  /** An index on the referencing table whose leading columns are the FK columns (any order among them). */
  readonly indexed: boolean;
}

export interface Catalog {
  readonly tables: ReadonlyMap<string, Table>;
  readonly foreignKeys: readonly ForeignKey[];
}

const SYSTEM_SCHEMAS = `('pg_catalog', 'information_schema', 'pg_toast')`;

export async function readCatalog(sql: postgres.Sql, options: { schemas?: readonly string[] } = {}): Promise<Catalog> {
  const schemas = options.schemas ? [...options.schemas] : null;
  const tableRows = await sql<{ oid: number; qualified: string; schema: string; name: string; kind: string; rows: string }[]>`
    SELECT c.oid::int AS oid, format('%I.%I', n.nspname, c.relname) AS qualified, n.nspname AS schema, c.relname AS name,
           c.relkind AS kind, c.reltuples::bigint::text AS rows
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
      AND n.nspname NOT IN ${sql.unsafe(SYSTEM_SCHEMAS)} AND n.nspname NOT LIKE 'pg\\_temp\\_%' AND n.nspname NOT LIKE 'pg\\_toast\\_temp\\_%'
      AND (${schemas}::text[] IS NULL OR n.nspname = ANY(${schemas}::text[]))
    ORDER BY 2`;
  const partitionRows = await sql<{ root: number; qualified: string; rows: string }[]>`
    SELECT pg_partition_root(c.oid)::int AS root, format('%I.%I', n.nspname, c.relname) AS qualified, greatest(c.reltuples, 0)::bigint::text AS rows
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relispartition
    ORDER BY 2`;
  const columnRows = await sql<{ table: number; name: string; type: string; nullable: boolean }[]>`
    SELECT a.attrelid::int AS table, a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type, NOT a.attnotnull AS nullable
    FROM pg_attribute a
    WHERE a.attnum > 0 AND NOT a.attisdropped AND a.attrelid IN (SELECT unnest(${tableRows.map((t) => t.oid)}::int[])::oid)
    ORDER BY a.attrelid, a.attnum`;
  // Indexes of a partitioned table live on the parent (relkind I) and are cloned onto partitions.
  const indexRows = await sql<{ table: number; name: string; columns: (string | null)[]; unique: boolean; partial: boolean }[]>`
    SELECT i.indrelid::int AS table, ic.relname AS name,
           array(SELECT coalesce(a.attname::text, '') FROM unnest(i.indkey[0:i.indnkeyatts - 1]) WITH ORDINALITY AS k(attnum, ord)
                 LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum AND k.attnum > 0
                 ORDER BY k.ord) AS columns,
           i.indisunique AS unique, i.indpred IS NOT NULL AS partial
    FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
    WHERE i.indrelid IN (SELECT unnest(${tableRows.map((t) => t.oid)}::int[])::oid)
    ORDER BY 1, 2`;
  const columns = groupBy(columnRows, (c) => c.table);
  const indexes = groupBy(indexRows, (i) => i.table);
  const partitions = groupBy(partitionRows, (p) => p.root);
  const tables = new Map<string, Table>();
  for (const t of tableRows) {
    const parts = partitions.get(t.oid) ?? [];
    tables.set(t.qualified, {
      qualified: t.qualified,
      schema: t.schema,
      name: t.name,
      partitioned: t.kind === 'p',
      partitions: parts.map((p) => p.qualified),
      columns: (columns.get(t.oid) ?? []).map(({ name, type, nullable }) => ({ name, type, nullable })),
      // An expression column comes back as '' (a column name is never empty).
      indexes: (indexes.get(t.oid) ?? []).map(({ name, columns: cols, unique, partial }) => ({ name, columns: cols.map((c) => c || null), unique, partial })),
      estimatedRows: t.kind === 'p' ? parts.reduce((sum, p) => sum + Number(p.rows), 0) : Number(t.rows),
    });
  }
  const foreignKeys: ForeignKey[] = [];
  for (const fk of await readKeys(sql)) {
    const t = tables.get(fk.table);
    if (!t || !tables.has(fk.references)) continue; // outside the schemas read
    foreignKeys.push({
      ...fk,
      nullable: fk.columns.some((c) => t.columns.find((col) => col.name === c)?.nullable !== false),
      indexed: t.indexes.some((i) => !i.partial && coversLeading(i.columns, fk.columns)),
    });
  }
  return { tables, foreignKeys };
}

const ON_DELETE: Record<string, OnDelete> = { a: 'no action', r: 'restrict', c: 'cascade', n: 'set null', d: 'set default' };

/** The index's first n key columns are the n FK columns, in any order. */
function coversLeading(indexColumns: readonly (string | null)[], fkColumns: readonly string[]): boolean {
  const leading = indexColumns.slice(0, fkColumns.length);
  return leading.length === fkColumns.length && fkColumns.every((c) => leading.includes(c));
}

function groupBy<T, K>(rows: readonly T[], key: (row: T) => K): Map<K, T[]> {
  const out = new Map<K, T[]>();
  for (const row of rows) {
    const k = key(row);
    const list = out.get(k);
    if (list) list.push(row);
    else out.set(k, [row]);
  }
  return out;
}

/** A foreign key as the graph needs it, without what reading the tables' columns and indexes adds. */
export type Key = Omit<ForeignKey, 'nullable' | 'indexed'>;

/**
 * Every foreign key of the database outside the system schemas (one catalog query): what the
 * runner needs to know what its deletes fire, without reading every table's columns and indexes.
 */
export async function readForeignKeys(sql: postgres.Sql): Promise<{ readonly foreignKeys: readonly Key[] }> {
  return { foreignKeys: await readKeys(sql) };
}

async function readKeys(sql: postgres.Sql): Promise<Key[]> {
  const rows = await sql<{ name: string; table: string; columns: string[]; references: string; referenced_columns: string[]; action: string }[]>`
    SELECT con.conname AS name, format('%I.%I', tn.nspname, t.relname) AS table,
           array(SELECT a.attname FROM unnest(con.conkey) WITH ORDINALITY AS k(attnum, ord)
                 JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum ORDER BY k.ord) AS columns,
           format('%I.%I', rn.nspname, r.relname) AS references,
           array(SELECT a.attname FROM unnest(con.confkey) WITH ORDINALITY AS k(attnum, ord)
                 JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.attnum ORDER BY k.ord) AS referenced_columns,
           con.confdeltype AS action
    FROM pg_constraint con
    JOIN pg_class t ON t.oid = coalesce(pg_partition_root(con.conrelid), con.conrelid) JOIN pg_namespace tn ON tn.oid = t.relnamespace
    JOIN pg_class r ON r.oid = coalesce(pg_partition_root(con.confrelid), con.confrelid) JOIN pg_namespace rn ON rn.oid = r.relnamespace
    WHERE con.contype = 'f'
      -- Constraints cloned onto partitions (or onto a partitioned referenced table's partitions)
      -- repeat their parent constraint.
      AND con.conparentid = 0
      AND tn.nspname NOT IN ${sql.unsafe(SYSTEM_SCHEMAS)} AND tn.nspname NOT LIKE 'pg\\_temp\\_%' AND tn.nspname NOT LIKE 'pg\\_toast\\_temp\\_%'
    ORDER BY t.oid::int, con.conname`;
  const keys: Key[] = [];
  // A key declared on each partition (not on the partitioned table) reads as the same key of the
  // parent once per partition: it is one edge, kept under its first name.
  const shapes = new Set<string>();
  for (const fk of rows) {
    const shape = JSON.stringify([fk.table, fk.columns, fk.references, fk.referenced_columns, fk.action]);
    if (shapes.has(shape)) continue;
    shapes.add(shape);
    const { name, table, columns, references } = fk;
    keys.push({ name, table, columns, references, referencedColumns: fk.referenced_columns, onDelete: ON_DELETE[fk.action] ?? 'no action' });
  }
  return keys;
}
