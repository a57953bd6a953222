import type { ForeignKey } from '../catalog/catalog.js';
import { blocks, detaches, referencing, walk, type Edge, type Graph, type Reached } from './graph.js';

/**
 * What a DELETE does through foreign keys, as PostgreSQL runs it: ON DELETE CASCADE removes the
 * referencing rows (and so on, transitively), SET NULL / SET DEFAULT updates them, NO ACTION /
 * RESTRICT makes the DELETE fail while a referencing row stays.
 */
export interface DeleteReach<E extends Edge = ForeignKey> {
  /** Tables ON DELETE CASCADE removes rows from, transitively (not the deleted table itself), nearest first. */
  readonly removed: readonly Reached<E>[];
  /** Tables whose rows ON DELETE SET NULL / SET DEFAULT updates (the deleted table too, for a self-reference). */
  readonly nulled: readonly Reached<E>[];
  /**
   * NO ACTION / RESTRICT keys into the deleted table or one its cascades remove rows from: a
   * referencing row the delete does not remove too makes it fail (a table the cascade reaches
   * loses only the rows it reaches, so its own such keys count).
   */
  readonly blockers: readonly Reached<E>[];
}

const cascades = (fk: Edge) => fk.onDelete === 'cascade';

/** What deleting rows of `table` does through foreign keys, nearest first. */
export function deleteReach<E extends Edge>(graph: Graph<E>, table: string): DeleteReach<E> {
  const removed = walk(graph.foreignKeys.filter(cascades), [table]);
  const nulled: Reached<E>[] = [];
  const blockers: Reached<E>[] = [];
  for (const from of [{ table, path: [] as readonly E[] }, ...removed]) {
    for (const fk of referencing(graph, from.table)) {
      if (detaches(fk) && !nulled.some((n) => n.table === fk.table)) nulled.push({ table: fk.table, path: [...from.path, fk] });
      if (blocks(fk)) blockers.push({ table: fk.table, path: [...from.path, fk] });
    }
  }
  return { removed, nulled, blockers };
}

/** The tables a delete from `table` removes rows from: itself and its ON DELETE CASCADE reach. */
export function removedBy<E extends Edge>(graph: Graph<E>, table: string): Map<string, readonly E[]> {
  return new Map([[table, []], ...deleteReach(graph, table).removed.map((r) => [r.table, r.path] as const)]);
}

/**
 * The CASCADE, SET NULL and SET DEFAULT keys a delete from `tables` fires: those that reference
 * one of them or a table their cascades reach (self-references included), in catalog order.
 */
export function firedKeys<E extends Edge>(graph: Graph<E>, tables: readonly string[]): (E & { readonly onDelete: 'cascade' | 'set null' | 'set default' })[] {
  const hit = new Set([...tables, ...walk(graph.foreignKeys.filter(cascades), tables).map((r) => r.table)]);
  return graph.foreignKeys.filter((fk): fk is E & { readonly onDelete: 'cascade' | 'set null' | 'set default' } => !blocks(fk) && hit.has(fk.references));
}

/** A table ON DELETE CASCADE reaches from a deleted table, and the keys it is reached by. */
export interface CascadeTarget<E extends Edge = ForeignKey> {
  readonly table: string;
  /** The cascading foreign keys into it from tables in the reach (a self-reference included). */
  readonly via: readonly E[];
  /** Longest chain of cascades from the deleted table, self-references aside: children sort first. */
  readonly depth: number;
}

/**
 * Tables ON DELETE CASCADE reaches from `table`, transitively, with the keys that reach each one
 * (the deleted table too, if a self-reference or a cycle leads back to it), deepest first.
 */
export function cascadeTargets<E extends Edge>(graph: Graph<E>, table: string): CascadeTarget<E>[] {
  const cascading = graph.foreignKeys.filter(cascades);
  const reached = new Set(walk(cascading, [table]).map((r) => r.table));
  if (cascading.some((fk) => fk.table === table && (fk.references === table || reached.has(fk.references)))) reached.add(table);
  // Longest path, relaxed as often as there are tables: a cycle stops growing there.
  const depth = new Map<string, number>([[table, 0]]);
  for (let round = 0; round <= reached.size; round++) {
    for (const fk of cascading) {
      if (fk.table === fk.references || !reached.has(fk.table) || !depth.has(fk.references)) continue;
      const d = Math.min(depth.get(fk.references)! + 1, reached.size);
      if (d > (depth.get(fk.table) ?? -1)) depth.set(fk.table, d);
    }
  }
  return [...reached]
    .map((t) => ({ table: t, via: cascading.filter((fk) => fk.table === t && (fk.references === table || reached.has(fk.references))), depth: depth.get(t) ?? 0 }))
    .sort((a, b) => b.depth - a.depth || a.table.localeCompare(b.table));
}
