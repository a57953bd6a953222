import type { Catalog, ForeignKey, Table } from '../catalog/catalog.js';
import { cmp, push, stronglyConnected, walk } from './graph.js';

/**
 * What has to go when rows of a root table go, read from the foreign keys alone. Pure.
 *
 * A foreign key is followed (its referencing rows must go too) when it would block the delete
 * (NO ACTION, RESTRICT) or does the delete itself (CASCADE). SET NULL and SET DEFAULT keys are
 * not followed: the schema says those rows outlive their parent, and the database detaches them.
 *
 * Cycles are broken at a nullable foreign key, because deleting through a cycle snowballs: the
 * users in a team the subject owns, then the teams those users own, and so on until other
 * subjects are purged. A broken key is not followed; its referencing rows must be detached
 * (set NULL) before the run, which a policy cannot do (steps only DELETE), so discover turns it
 * into a precondition. A self-reference is a cycle of one table: nullable NO ACTION/RESTRICT
 * ones are broken the same way; CASCADE ones and NOT NULL ones are followed within the same
 * DELETE statement (a recursive query), since the database would cascade anyway or the rows
 * cannot exist without their parent.
 */
export interface Dependencies {
  readonly root: Table;
  /** Tables to delete from, children first, the root last. */
  readonly order: readonly Table[];
  /** Followed foreign keys from each table of the order to another table of the order. */
  readonly parents: ReadonlyMap<string, readonly ForeignKey[]>;
  /** Followed self-references, by table: deleted in the same statement, recursively. */
  readonly selfReferences: ReadonlyMap<string, readonly ForeignKey[]>;
  /** Foreign keys not followed to break a cycle, whose referenced table is in the order. */
  readonly broken: readonly BrokenKey[];
  /** ON DELETE SET NULL / SET DEFAULT keys referencing a table of the order, by referenced table. */
  readonly detached: ReadonlyMap<string, readonly ForeignKey[]>;
  /** Foreign-key distance from the root (0 for the root). */
  readonly depth: ReadonlyMap<string, number>;
}

export interface BrokenKey {
  readonly fk: ForeignKey;
  /** false: a cycle of NOT NULL keys, which no order of DELETEs can satisfy. */
  readonly nullable: boolean;
  /** The tables of the cycle it broke (empty for a self-reference). */
  readonly cycle: readonly string[];
}

const FOLLOWED = new Set<ForeignKey['onDelete']>(['no action', 'restrict', 'cascade']);

export function dependencies(catalog: Catalog, root: string): Dependencies {
  const rootTable = catalog.tables.get(root);
  if (!rootTable) throw new Error(`no table ${root} in the catalog`);
  const followed = catalog.foreignKeys.filter((fk) => FOLLOWED.has(fk.onDelete)).sort(byKey);
  const selfKeys = followed.filter((fk) => fk.table === fk.references);
  const edges = followed.filter((fk) => fk.table !== fk.references);
  const broken: BrokenKey[] = [];
  const isBroken = (fk: ForeignKey) => broken.some((b) => b.fk === fk);

  let reach = reachable(root, edges, isBroken);
  for (;;) {
    const inside = edges.filter((e) => !isBroken(e) && reach.depth.has(e.table) && reach.depth.has(e.references));
    const cycle = stronglyConnected([...reach.depth.keys()].sort(byName(catalog)), inside).find((c) => c.length > 1);
    if (!cycle) break;
    const members = new Set(cycle);
    const candidates = inside.filter((e) => members.has(e.table) && members.has(e.references));
    // Prefer a nullable key that the database would not cascade through, then the key that
    // points back nearest the root (the edge that closes the loop), then names for stability.
    const rank = (e: ForeignKey) => (e.nullable ? (e.onDelete === 'cascade' ? 1 : 0) : 2);
    const pick = [...candidates].sort(
      (a, b) => rank(a) - rank(b) || reach.depth.get(a.references)! - reach.depth.get(b.references)! || byKey(a, b),
    )[0]!;
    broken.push({ fk: pick, nullable: pick.nullable, cycle });
    reach = reachable(root, edges, isBroken);
  }

  const inOrder = (t: string) => reach.depth.has(t);
  const selfReferences = new Map<string, ForeignKey[]>();
  for (const fk of selfKeys.filter((k) => inOrder(k.table))) {
    if (fk.nullable && fk.onDelete !== 'cascade') broken.push({ fk, nullable: true, cycle: [] });
    else push(selfReferences, fk.table, fk);
  }
  const live = edges.filter((e) => !isBroken(e) && inOrder(e.table) && inOrder(e.references));
  const parents = new Map<string, ForeignKey[]>();
  for (const e of live) push(parents, e.table, e);
  const detached = new Map<string, ForeignKey[]>();
  for (const fk of [...catalog.foreignKeys].sort(byKey)) {
    if (!FOLLOWED.has(fk.onDelete) && inOrder(fk.references)) push(detached, fk.references, fk);
  }

  return {
    root: rootTable,
    order: childrenFirst(root, live, catalog).map((t) => catalog.tables.get(t)!),
    parents,
    selfReferences,
    broken: broken.filter((b) => inOrder(b.fk.references)),
    detached,
    depth: reach.depth,
  };
}

/** Every table whose rows depend on the root, by foreign-key distance (0 for the root). */
function reachable(root: string, edges: readonly ForeignKey[], isBroken: (fk: ForeignKey) => boolean): { depth: Map<string, number> } {
  return { depth: new Map([[root, 0], ...walk(edges.filter((e) => !isBroken(e)), [root]).map((r) => [r.table, r.path.length] as const)]) };
}

/**
 * Depth-first from the root, each table emitted after every table that references it: a
 * topological order (children first) that keeps a table's dependents next to it.
 */
function childrenFirst(root: string, edges: readonly ForeignKey[], catalog: Catalog): string[] {
  const order: string[] = [];
  const seen = new Set<string>();
  const order_ = byName(catalog);
  const visit = (table: string) => {
    if (seen.has(table)) return;
    seen.add(table);
    const children = [...new Set(edges.filter((e) => e.references === table).map((e) => e.table))].sort(order_);
    for (const child of children) visit(child);
    order.push(table);
  };
  visit(root);
  return order;
}

function byKey(a: ForeignKey, b: ForeignKey): number {
  return cmp(a.table, b.table) || cmp(a.name, b.name);
}

/** Tables by schema then name as the database spells them (not by their quoted form). */
export function byName(catalog: Catalog): (a: string, b: string) => number {
  const key = (t: string) => {
    const table = catalog.tables.get(t);
    return table ? `${table.schema}\u0000${table.name}` : t;
  };
  return (a, b) => cmp(key(a), key(b));
}
