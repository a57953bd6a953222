import type { ForeignKey, OnDelete } from '../catalog/catalog.js';

/**
 * The foreign-key graph: pure functions over a catalog's foreign keys (src/catalog reads them),
 * the one place that walks them. Tables are named as the catalog keys them (`app."User"`,
 * partitions rolled up to their partitioned root). An edge points from the referencing table
 * to the referenced one; every walk here goes against that direction, from a table to the
 * tables whose rows depend on it.
 *
 * Generic over the edge: the runner reads a light list of keys (one catalog query), lint,
 * discover and backups the full catalog.
 */
export interface Edge {
  readonly name: string;
  /** The referencing table. */
  readonly table: string;
  /** The referenced table. */
  readonly references: string;
  readonly onDelete: OnDelete;
}

export interface Graph<E extends Edge = ForeignKey> {
  readonly foreignKeys: readonly E[];
}

export interface Reached<E extends Edge = ForeignKey> {
  readonly table: string;
  /** The keys from the start outward: path[0] references the start, the last one is from `table`. */
  readonly path: readonly E[];
}

/** Foreign keys that point at a table (its referencing side), in catalog order. */
export function referencing<E extends Edge>(graph: Graph<E>, table: string): E[] {
  return graph.foreignKeys.filter((fk) => fk.references === table);
}

/**
 * Breadth-first from `starts` against the keys' direction: every table that references one of
 * them through a chain of `edges`, each once (the starts excluded), nearest first, with the
 * first chain found (keys in the order given).
 */
export function walk<E extends Edge>(edges: readonly E[], starts: readonly string[]): Reached<E>[] {
  const into = new Map<string, E[]>();
  for (const fk of edges) push(into, fk.references, fk);
  const seen = new Set(starts);
  const out: Reached<E>[] = [];
  let frontier: Reached<E>[] = starts.map((table) => ({ table, path: [] }));
  while (frontier.length) {
    const next: Reached<E>[] = [];
    for (const { table: parent, path } of frontier) {
      for (const fk of into.get(parent) ?? []) {
        if (seen.has(fk.table)) continue;
        seen.add(fk.table);
        const entry = { table: fk.table, path: [...path, fk] };
        out.push(entry);
        next.push(entry);
      }
    }
    frontier = next;
  }
  return out;
}

/**
 * Every table that references `table` through a chain of foreign keys (those `follow` accepts,
 * all by default), with the chain, nearest first; self-references are not followed.
 */
export function dependents<E extends Edge>(graph: Graph<E>, table: string, follow: (fk: E) => boolean = () => true): Reached<E>[] {
  return walk(graph.foreignKeys.filter(follow), [table]);
}

/** A NO ACTION or RESTRICT foreign key: a referenced row cannot go while a referencing row stays. */
export function blocks(fk: Edge): boolean {
  return fk.onDelete === 'no action' || fk.onDelete === 'restrict';
}

/** SET NULL or SET DEFAULT: the referencing row stays and is updated. */
export function detaches(fk: Edge): boolean {
  return fk.onDelete === 'set null' || fk.onDelete === 'set default';
}

/** Tarjan's strongly connected components of `nodes` over `edges`, each sorted, in a stable order. */
export function stronglyConnected(nodes: readonly string[], edges: readonly Edge[]): string[][] {
  const outward = new Map<string, Edge[]>();
  for (const e of edges) push(outward, e.table, e);
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const out: string[][] = [];
  let counter = 0;
  const visit = (v: string) => {
    index.set(v, counter);
    low.set(v, counter);
    counter++;
    stack.push(v);
    onStack.add(v);
    for (const e of outward.get(v) ?? []) {
      const w = e.references;
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v)!, index.get(w)!));
      }
    }
    if (low.get(v) === index.get(v)) {
      const component: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        component.push(w);
      } while (w !== v);
      out.push(component.sort(cmp));
    }
  };
  for (const n of nodes) if (!index.has(n)) visit(n);
  return out.sort((a, b) => cmp(a[0]!, b[0]!));
}

export interface Cycle<E extends Edge = ForeignKey> {
  /** Its tables, sorted; one for a self-reference. */
  readonly tables: readonly string[];
  /** The keys between its tables (a self-reference: the key from the table to itself). */
  readonly keys: readonly E[];
}

/**
 * The cycles of the graph (keys `follow` accepts): each set of tables that reach one another
 * through foreign keys, and each self-reference (a folder tree's parentId). A table with a
 * self-reference inside a larger cycle is part of that cycle, its self-reference among the keys.
 */
export function cycles<E extends Edge>(graph: Graph<E>, follow: (fk: E) => boolean = () => true): Cycle<E>[] {
  const edges = graph.foreignKeys.filter(follow);
  const nodes = [...new Set(edges.flatMap((e) => [e.table, e.references]))].sort(cmp);
  const out: Cycle<E>[] = [];
  for (const component of stronglyConnected(nodes, edges)) {
    const members = new Set(component);
    const keys = edges.filter((e) => members.has(e.table) && members.has(e.references));
    if (component.length > 1 || keys.length) out.push({ tables: component, keys });
  }
  return out;
}

/** Code-point order: the same on every machine, whatever its locale. */
export function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export function push<K, V>(map: Map<K, V[]>, key: K, value: V): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}
