import type { Catalog, Column, Table } from '../catalog/catalog.js';
import { UsageError } from '../core/errors.js';
import type { ParamType } from '../policy.js';
import { didYouMean } from '../validate/didYouMean.js';
import { resolveTable } from '../graph/resolve.js';

/** --table against the catalog (graph/resolve.ts), with a did-you-mean when there is no such table. */
export function tableOption(catalog: Catalog, reference: string, defaultSchema = 'public'): Table {
  const r = resolveTable(catalog, reference, { defaultSchema });
  if (r.kind === 'found') return r.table;
  if (r.kind === 'ambiguous') throw new UsageError(`--table ${reference} is ambiguous: ${r.tables.map((t) => t.qualified).join(', ')}; name the schema`);
  const where = r.schemaHasTables ? `in schema ${r.schema}` : `in schema ${r.schema} (which has no tables)`;
  throw new UsageError(`--table ${reference}: no table ${r.name} ${where}${r.hint ? ` (did you mean ${r.hint}?)` : ''}`);
}

export function resolveColumn(table: Table, name: string): Column {
  const found = table.columns.find((c) => c.name === name);
  if (found) return found;
  const hint = didYouMean(name, table.columns.map((c) => c.name));
  throw new UsageError(`--key ${name}: ${table.qualified} has no column ${name}${hint ? ` (did you mean ${hint}?)` : ''}`);
}

/** The param type a key column is compared with; undefined when none fits (the lookup casts). */
export function paramTypeOf(columnType: string): ParamType | undefined {
  const t = columnType.toLowerCase();
  if (t === 'text' || t.startsWith('character varying') || t.startsWith('character(') || t === 'character' || t === 'name') return 'text';
  if (t === 'integer' || t === 'smallint') return 'integer';
  if (t === 'bigint') return 'bigint';
  if (t === 'numeric' || t.startsWith('numeric(')) return 'numeric';
  if (t === 'uuid' || t === 'boolean' || t === 'date') return t;
  if (/^timestamp(\(\d\))? with time zone$/.test(t)) return 'timestamptz';
  return undefined;
}

/** A param name (snake_case, not reserved) for a column: userId -> user_id. */
export function paramNameOf(column: string): string {
  let name = column
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .toLowerCase()
    .replace(/[^a-z0-9_]+/g, '_')
    .replace(/^_+|_+$/g, '');
  if (!/^[a-z]/.test(name)) name = `key_${name}`.replace(/_+$/, '');
  return name === 'subject' || name === 'force_multi' ? `${name}_key` : name;
}

/** A policy name for purging a table: User -> purge-user, user_profiles -> purge-user-profiles. */
export function policyNameOf(table: string): string {
  const slug = table
    .replace(/([a-z0-9])([A-Z])/g, '$1-$2')
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '');
  return `purge-${slug || 'rows'}`.slice(0, 100).replace(/-+$/, '');
}
