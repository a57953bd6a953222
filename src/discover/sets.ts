import type { Catalog, ForeignKey, Table } from '../catalog/catalog.js';
import { cmp, referencing } from '../graph/graph.js';
import type { Dependencies } from '../graph/purge.js';
import { paramNameOf } from './resolve.js';

/**
 * The named key sets of a discovered policy (sets: in the policy, read as :name).
 *
 * A table whose rows other steps reach through its key gets a set: its removed keys, captured
 * once before any step, so that each foreign-key path is written once and every later step reads
 * the set. A table that nothing in the purge references (a leaf) needs none: its step reads its
 * parents' sets.
 *
 * An owned parent is a table outside the purge that the purged rows point at and that nobody
 * else is expected to share: the referencing column is unique (a 1:1 row, such as a document's
 * content or an organisation's settings), or every foreign key into the table comes from a table
 * being purged. Its keys are captured from the referencing rows before they go (a capture set),
 * and a last step deletes those rows once nothing references them any more.
 */
export interface TableSet {
  readonly name: string;
  readonly table: Table;
  /** The referenced columns every followed key into the table uses. */
  readonly key: readonly string[];
}

export interface Capture {
  readonly name: string;
  /** The key from a purged table to the owned parent. */
  readonly fk: ForeignKey;
}

export interface OwnedParent {
  readonly table: Table;
  readonly captures: readonly Capture[];
  /** Some capturing column is unique (1:1); else the table is only referenced from the purge. */
  readonly oneToOne: boolean;
  /** Every foreign key into the table: a row is deleted only when none of them points at it. */
  readonly referencedBy: readonly ForeignKey[];
}

export interface KeySets {
  readonly tables: ReadonlyMap<string, TableSet>;
  readonly owned: readonly OwnedParent[];
}

export function keySets(catalog: Catalog, deps: Dependencies, key: string, reserved: readonly string[]): KeySets {
  const names = new Names(reserved);
  const inOrder = new Set(deps.order.map((t) => t.qualified));
  const root = deps.root.qualified;

  // Tables referenced by a followed key from another table of the purge, parents first.
  const tables = new Map<string, TableSet>();
  for (const table of [...deps.order].reverse()) {
    // A self-reference's recursive query is worth naming even when nothing else reads it.
    const self = deps.selfReferences.get(table.qualified) ?? [];
    const into = [...[...deps.parents.values()].flat().filter((fk) => fk.references === table.qualified), ...self];
    if (!into.length) continue;
    const keys = [...new Set(into.map((fk) => fk.referencedColumns.join('\u0000')))];
    if (keys.length !== 1) continue; // referenced by different unique keys: the path stays inline
    const columns = into[0]!.referencedColumns;
    // The subject's own keys need no set: :subject is one.
    if (table.qualified === root && !self.length && columns.length === 1 && columns[0] === key) continue;
    tables.set(table.qualified, { name: names.take(plural(paramNameOf(table.name))), table, key: columns });
  }

  // Owned parents: the targets of keys from purged tables to tables outside the purge.
  const outward = new Map<string, ForeignKey[]>();
  for (const table of deps.order) {
    for (const fk of catalog.foreignKeys.filter((f) => f.table === table.qualified && !inOrder.has(f.references))) {
      const list = outward.get(fk.references) ?? [];
      list.push(fk);
      outward.set(fk.references, list);
    }
  }
  const owned: OwnedParent[] = [];
  for (const parent of [...outward.keys()].sort(cmp)) {
    const table = catalog.tables.get(parent);
    if (!table) continue;
    const fks = outward.get(parent)!.sort((a, b) => cmp(a.table, b.table) || cmp(a.name, b.name));
    const referencedBy = referencing(catalog, parent).sort((a, b) => cmp(a.table, b.table) || cmp(a.name, b.name));
    const oneToOne = fks.some((fk) => unique(catalog.tables.get(fk.table)!, fk.columns));
    // Referenced only from the purge, and not a peer in a cycle with it (its own keys lead back
    // into the purge): then nobody else is expected to share its rows.
    const exclusive = referencedBy.every((f) => inOrder.has(f.table)) && !leadsInto(catalog, parent, inOrder);
    if (!oneToOne && !exclusive) continue;
    // Named for the column (document_meta_ids for "documentMetaId"), and for its table too when
    // several tables point at the parent.
    const captures = fks.map((fk) => {
      const column = fk.columns.map(paramNameOf).join('_').replace(/_id$/, '');
      const from = paramNameOf(catalog.tables.get(fk.table)!.name);
      return { name: names.take(`${fks.length > 1 ? `${from}_` : ''}${column}_ids`), fk };
    });
    owned.push({ table, captures, oneToOne, referencedBy });
  }
  return { tables, owned };
}

/** Some table of `targets` is reachable from `table` by following foreign keys to what they reference. */
function leadsInto(catalog: Catalog, table: string, targets: ReadonlySet<string>): boolean {
  const seen = new Set([table]);
  const queue = [table];
  while (queue.length) {
    const t = queue.shift()!;
    for (const fk of catalog.foreignKeys.filter((f) => f.table === t)) {
      if (targets.has(fk.references)) return true;
      if (!seen.has(fk.references)) {
        seen.add(fk.references);
        queue.push(fk.references);
      }
    }
  }
  return false;
}

/** A unique, non-partial index on exactly these columns (in any order). */
function unique(table: Table, columns: readonly string[]): boolean {
  return table.indexes.some((i) => i.unique && !i.partial && i.columns.length === columns.length && columns.every((c) => i.columns.includes(c)));
}

/** English plural of a snake_case name, good enough for set names (users, addresses, categories). */
function plural(name: string): string {
  if (/([^s]s|_data|_info)$/.test(name)) return name; // events, user_data: already plural or uncountable
  if (/(ss|x|z|ch|sh)$/.test(name)) return `${name}es`;
  if (/[^aeiou]y$/.test(name)) return `${name.slice(0, -1)}ies`;
  return `${name}s`;
}

/** Set names: unique, not a param or reserved name, at most 50 characters (pg_temp.purgekit_set_<name> fits 63 bytes). */
class Names {
  private readonly used: Set<string>;
  constructor(reserved: readonly string[]) {
    this.used = new Set(['subject', 'force_multi', ...reserved]);
  }

  take(wanted: string): string {
    const base = wanted.slice(0, 46).replace(/_+$/, '');
    let name = base;
    for (let n = 2; this.used.has(name); n++) name = `${base}_${n}`;
    this.used.add(name);
    return name;
  }
}
