import type { Catalog, Table } from '../catalog/catalog.js';
import { parseQualified } from '../sql/qualified.js';
import { didYouMean } from '../validate/didYouMean.js';
import { cmp } from './graph.js';

/**
 * A table name as a policy or a command line gives it, to the catalog's table. The one lookup
 * lint, discover and counts share: names as the database spells them; a partition stands for
 * its partitioned root (the graph knows only roots); a bare name is looked up in the default
 * schema, or, with `anySchema`, in the one schema that has it when the default has none.
 */
export interface TableRef {
  /** Absent: the default schema. */
  readonly schema?: string;
  readonly name: string;
}

export type Resolution =
  | { readonly kind: 'found'; readonly table: Table }
  | { readonly kind: 'ambiguous'; readonly tables: readonly Table[] }
  | {
      readonly kind: 'missing';
      readonly schema: string;
      readonly name: string;
      /** Whether the schema it was looked for in has any table at all. */
      readonly schemaHasTables: boolean;
      /** The closest table, spelled as it would be given (bare in the schema looked in). */
      readonly hint: string | undefined;
    };

export interface ResolveOptions {
  readonly defaultSchema?: string;
  /** A bare name absent from the default schema: the table of that name in whichever schema has one. */
  readonly anySchema?: boolean;
}

export function resolveTable(catalog: Catalog, ref: TableRef | string, options: ResolveOptions = {}): Resolution {
  const given = typeof ref === 'string' ? parseTableRef(ref) : ref;
  const schema = given.schema ?? options.defaultSchema ?? 'public';
  const { name } = given;
  const tables = [...catalog.tables.values()].sort((a, b) => cmp(a.schema, b.schema) || cmp(a.name, b.name));
  const found = tables.find((t) => t.schema === schema && t.name === name) ?? rootOf(tables, schema, name);
  if (found) return { kind: 'found', table: found };
  const bare = given.schema === undefined;
  if (bare && options.anySchema) {
    const elsewhere = tables.filter((t) => t.name === name);
    if (elsewhere.length === 1) return { kind: 'found', table: elsewhere[0]! };
    if (elsewhere.length > 1) return { kind: 'ambiguous', tables: elsewhere };
  }
  const spelled = (t: Table) => (t.schema === schema && bare ? t.name : `${t.schema}.${t.name}`);
  // The same name in another schema, or with other capitals ("User" vs user), before edit distance.
  const sameName = tables.filter((t) => t.name.toLowerCase() === name.toLowerCase()).map(spelled);
  const candidates = [...tables.map(spelled), ...(bare && options.anySchema ? tables.map((t) => t.name) : [])];
  const hint = sameName.length ? sameName.join(' or ') : didYouMean(bare ? name : `${schema}.${name}`, candidates);
  return { kind: 'missing', schema, name, schemaHasTables: tables.some((t) => t.schema === schema), hint };
}

/** The catalog key of a table a policy names (partitions: their root), or undefined. */
export function tableKey(catalog: Catalog, ref: TableRef): string | undefined {
  const r = resolveTable(catalog, ref);
  return r.kind === 'found' ? r.table.qualified : undefined;
}

/** The partitioned table `schema.name` is a partition of (at any level). */
function rootOf(tables: readonly Table[], schema: string, name: string): Table | undefined {
  return tables.find((t) =>
    t.partitions.some((p) => {
      const part = parseQualified(p);
      return part?.schema === schema && part.name === name;
    }),
  );
}

/** `schema.table` or a bare `table`, each part bare or double-quoted as SQL writes it. */
export function parseTableRef(text: string): TableRef {
  const quoted = parseQualified(text);
  if (quoted) return quoted;
  const unquote = (s: string) => s.replace(/^"(.*)"$/, '$1').replaceAll('""', '"');
  const dot = text.indexOf('.');
  return dot > 0 ? { schema: unquote(text.slice(0, dot)), name: unquote(text.slice(dot + 1)) } : { name: unquote(text) };
}
