import type postgres from 'postgres';
import { UsageError } from '../core/errors.js';
import { didYouMean } from '../validate/didYouMean.js';
import type { CatalogTable } from './columns.js';

/**
 * --schema, --include, --exclude: names checked against the database before anything is read.
 * A table is `name` (any schema) or `schema.name`, `*` matching any run of characters; a name
 * that matches no table at all is a usage error, not an empty scan.
 */
export interface TableFilter {
  readonly schemas?: readonly string[];
  readonly include: readonly string[];
  readonly exclude: readonly string[];
}

export async function checkSchemas(sql: postgres.Sql, schemas: readonly string[]): Promise<void> {
  const rows = await sql<{ name: string }[]>`SELECT nspname AS name FROM pg_namespace WHERE nspname NOT LIKE 'pg\_%' AND nspname <> 'information_schema'`;
  const known = rows.map((r) => r.name);
  for (const s of schemas) {
    if (known.includes(s)) continue;
    const hint = didYouMean(s, known);
    throw new UsageError(`--schema ${s}: no such schema${hint ? ` (did you mean ${hint}?)` : ''}`);
  }
}

export async function selectTables(sql: postgres.Sql, tables: readonly CatalogTable[], filter: TableFilter): Promise<CatalogTable[]> {
  const all = await sql<{ schema: string; name: string }[]>`
    SELECT n.nspname AS schema, c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p', 'm', 'f') AND n.nspname NOT LIKE 'pg\_%' AND n.nspname <> 'information_schema'`;
  const matcher = (option: string, pattern: string) => {
    const test = compile(pattern);
    if (!all.some(test)) {
      const hint = didYouMean(pattern, all.flatMap((t) => [t.name, `${t.schema}.${t.name}`]));
      throw new UsageError(`${option} ${pattern}: no such table${hint ? ` (did you mean ${hint}?)` : ''}`);
    }
    return test;
  };
  const include = filter.include.map((p) => matcher('--include', p));
  const exclude = filter.exclude.map((p) => matcher('--exclude', p));
  return tables.filter((t) => (!include.length || include.some((m) => m(t))) && !exclude.some((m) => m(t)));
}

function compile(pattern: string): (t: { schema: string; name: string }) => boolean {
  const glob = (p: string) => new RegExp(`^${p.split('*').map((s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`);
  const dot = pattern.indexOf('.');
  if (dot > 0) {
    const schema = glob(pattern.slice(0, dot));
    const name = glob(pattern.slice(dot + 1));
    return (t) => schema.test(t.schema) && name.test(t.name);
  }
  const name = glob(pattern);
  return (t) => name.test(t.name);
}
