import type { Catalog, ForeignKey } from '../catalog/catalog.js';
import { quoteIdent } from '../sql/quote.js';
import type { VolatileCatalog } from './volatileFunctions.js';

/**
 * What the lint rules read from the catalog besides the catalog itself, and the text they print
 * about its foreign keys: paths, keys, fixes. What the keys reach is src/graph's.
 */
export interface LintContext {
  readonly catalog: Catalog;
  /** Foreign keys PostgreSQL checks only at COMMIT (DEFERRABLE INITIALLY DEFERRED), as fkKey(). */
  readonly deferred: ReadonlySet<string>;
  /** VOLATILE functions named like ones the policies call (PK-L012), by schema. */
  readonly volatileFunctions?: VolatileCatalog;
  /** Print long fixes in full (a partitioned table's index for each of its partitions). */
  readonly verbose?: boolean;
}

export function fkKey(fk: { readonly table: string; readonly name: string }): string {
  return `${fk.table}\u0000${fk.name}`;
}

/** `app."User" <- app."Post" ("Post_authorId_fkey") <- ...`, the form the generated wipe reach uses. */
export function pathText(start: string, path: readonly ForeignKey[]): string {
  return [start, ...path.map((fk) => `${fk.table} (${quoteIdent(fk.name)})`)].join(' <- ');
}

/** `foreign key "Comment_authorId_fkey" ("authorId") ON DELETE NO ACTION` */
export function fkText(fk: ForeignKey): string {
  return `foreign key ${quoteIdent(fk.name)} (${fk.columns.map(quoteIdent).join(', ')}) ON DELETE ${fk.onDelete.toUpperCase()}`;
}

/** A table as a policy writes it: bare in the policy's schema, schema.name elsewhere. */
export function policyRef(catalog: Catalog, table: string, policySchema: string): string {
  const t = catalog.tables.get(table);
  if (!t) return table;
  return t.schema === policySchema ? t.name : `${t.schema}.${t.name}`;
}

/**
 * The statements that give a foreign key its covering index without blocking writes. A
 * partitioned table cannot be indexed CONCURRENTLY: its index is created ON ONLY the parent
 * (instantly, invalid), each partition's index concurrently, then attached, which validates it.
 */
/**
 * createIndexFix, short for a partitioned table with more than one partition: the parent's
 * statement, the first partition's pair, and how many more (the full script: --verbose).
 */
export function createIndexFixSummary(catalog: Catalog, fk: ForeignKey): string {
  const table = catalog.tables.get(fk.table);
  if (!table?.partitioned || table.partitions.length < 2) return createIndexFix(catalog, fk);
  const one: Catalog = { tables: new Map([[table.qualified, { ...table, partitions: table.partitions.slice(0, 1) }]]), foreignKeys: [] };
  const more = table.partitions.length - 1;
  return `${createIndexFix(one, fk)} And the same for ${more} more ${more === 1 ? 'partition' : 'partitions'} of ${table.qualified} (purgekit lint --verbose prints every statement).`;
}

export function createIndexFix(catalog: Catalog, fk: ForeignKey): string {
  const table = catalog.tables.get(fk.table);
  const columns = `(${fk.columns.map(quoteIdent).join(', ')})`;
  if (!table) return `CREATE INDEX CONCURRENTLY ON ${fk.table} ${columns};`;
  const name = indexName(table.name, fk.columns);
  if (!table.partitioned) return `CREATE INDEX CONCURRENTLY ${quoteIdent(name)} ON ${table.qualified} ${columns};`;
  const statements = [`CREATE INDEX ${quoteIdent(name)} ON ONLY ${table.qualified} ${columns};`];
  for (const partition of table.partitions) {
    const [schema, partName] = splitQualified(partition);
    const partIndex = indexName(partName, fk.columns);
    statements.push(
      `CREATE INDEX CONCURRENTLY ${quoteIdent(partIndex)} ON ${partition} ${columns};`,
      `ALTER INDEX ${quoteIdent(table.schema)}.${quoteIdent(name)} ATTACH PARTITION ${quoteIdent(schema)}.${quoteIdent(partIndex)};`,
    );
  }
  return statements.join(' ');
}

const MAX_IDENTIFIER_BYTES = 63;

/** PostgreSQL's own default name, table_col1_col2_idx, shortened to fit an identifier. */
function indexName(table: string, columns: readonly string[]): string {
  const suffix = '_idx';
  let stem = `${table}_${columns.join('_')}`;
  while (Buffer.byteLength(stem + suffix, 'utf8') > MAX_IDENTIFIER_BYTES) stem = [...stem].slice(0, -1).join('');
  return stem + suffix;
}

/** `schema.name` as format('%I.%I') writes it, back into its two names. */
export function splitQualified(text: string): [string, string] {
  const names: string[] = [];
  let i = 0;
  while (i <= text.length) {
    if (text[i] === '"') {
      let name = '';
      i++;
      while (i < text.length) {
        if (text[i] === '"' && text[i + 1] === '"') {
          name += '"';
          i += 2;
        } else if (text[i] === '"') {
          i++;
          break;
        } else name += text[i++];
      }
      names.push(name);
      i++; // the dot
    } else {
      const dot = text.indexOf('.', i);
      const end = dot === -1 ? text.length : dot;
      names.push(text.slice(i, end));
      i = end + 1;
    }
  }
  return [names[0] ?? '', names[1] ?? ''];
}
