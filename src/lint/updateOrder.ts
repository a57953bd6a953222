import type { ForeignKey } from '../catalog/catalog.js';
import { tableKey } from '../graph/resolve.js';
import type { Policy } from '../policy.js';
import type { LintContext } from './graph.js';

/**
 * PK-L003 knows detach: a detach step on the referencing table, before the delete at `before`,
 * that sets a column of the foreign key NULL (a key with a NULL column references nothing) or to
 * its default, unhooks those rows from the rows being deleted, so the order is no longer a
 * problem. Which rows it detaches is the author's where; lint trusts it, the run checks it (the
 * delete fails, 23503, and everything rolls back).
 */
export function detachedBefore(ctx: LintContext, policy: Policy, fk: ForeignKey, before: number): boolean {
  return policy.steps.slice(0, before).some(
    (s) => s.update?.mode === 'detach' && tableKey(ctx.catalog, s.table) === fk.table && s.update.set.some((c) => fk.columns.includes(c.column)),
  );
}
