import type postgres from 'postgres';
import { readForeignKeys } from '../catalog/catalog.js';
import { firedKeys } from '../graph/delete.js';
import { cmp } from '../graph/graph.js';

/**
 * Tables that deleting from the steps' tables can change through foreign keys: ON DELETE
 * CASCADE (followed transitively), SET NULL and SET DEFAULT, as src/graph computes them over the
 * keys read now (partitions folded into their partitioned root). Read-only, one catalog query.
 */
export interface Reach {
  readonly table: string;
  readonly from: string;
  readonly constraint: string;
  readonly action: 'cascade' | 'set null' | 'set default';
}

export async function cascadeReach(sql: postgres.Sql, stepTables: readonly string[]): Promise<Reach[]> {
  if (!stepTables.length) return [];
  return firedKeys(await readForeignKeys(sql), stepTables)
    .map((fk): Reach => ({ table: fk.table, from: fk.references, constraint: fk.name, action: fk.onDelete }))
    .sort((a, b) => cmp(a.table, b.table) || cmp(a.from, b.from) || cmp(a.constraint, b.constraint));
}

/**
 * Whether the reached table has a step of its own that runs no later than the first step on the
 * table it references (children first, as discover writes and lint's PK-L011 assumes; the same
 * step for a self-reference): then the cascade or SET NULL can only change rows that step leaves
 * behind, none when its where covers every row pointing at a removed one. `steps` is the plan's
 * step tables in run order.
 */
export function withOwnStep(reach: readonly Reach[], steps: readonly string[]): (Reach & { readonly ownStep: boolean })[] {
  return reach.map((r) => {
    const parent = steps.indexOf(r.from);
    const child = steps.indexOf(r.table);
    return { ...r, ownStep: parent >= 0 && child >= 0 && child <= parent };
  });
}
