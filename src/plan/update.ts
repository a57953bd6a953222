import type { NewValue, SqlFragment, StepUpdate } from '../policy.js';
import type { AuthorSql, StepNode, UpdateNode, UpdateValue } from './nodes.js';

/** A step with anonymize: or detach: as its plan node: the step's fields, and each column's new value. */
export function updateNode(fields: Omit<StepNode, 'kind'>, update: StepUpdate, author: (fragment: SqlFragment) => AuthorSql): UpdateNode {
  return { kind: 'update', ...fields, mode: update.mode, set: update.set.map((c) => ({ column: c.column, value: valueOf(c.value, author) })) };
}

function valueOf(value: NewValue, author: (fragment: SqlFragment) => AuthorSql): UpdateValue {
  switch (value.kind) {
    case 'expression':
      return { kind: 'expression', sql: author(value.sql) };
    case 'null':
    case 'default':
    case 'constant':
    case 'redact':
    case 'hash':
      return value;
  }
}
