/**
 * Whether a policy's subjects can share a transaction (--batch-size above 1). In a batch the
 * parameter block holds each subject's values only while its lookups run; everything after them
 * runs once over the union of the subjects' keys. So a policy whose other SQL (steps, sets,
 * preserve rules, expectations) or after_commit jobs read a param directly, not through
 * :subject, would see one subject's values for all: such a policy runs one subject per
 * transaction, and the run says why.
 */
import type { Policy, SqlFragment } from '../policy.js';
import { authorSql } from '../sql/functionRules.js';
import { placeholdersOf } from '../outbox/spec.js';

export function unbatchable(policy: Policy): string | undefined {
  const params = new Set(policy.params.map((p) => p.name));
  const reads = (f: SqlFragment) => f.parts.some((part) => typeof part !== 'string' && params.has(part.ref));
  const fragments = [
    ...authorSql(policy).filter((x) => x.path[0] !== 'subject'),
    ...policy.sets.map((set) => ({ path: ['sets', set.name, 'where'], fragment: set.where })),
  ];
  const sql = fragments.find((x) => reads(x.fragment));
  if (sql) return `${sql.path.join('.')} reads a param directly, not through :subject`;
  const job = policy.afterCommit.find((a) => placeholdersOf(a.spec).some((p) => p.kind === 'params'));
  if (job) return 'an after_commit job reads {params.*}';
  return undefined;
}
