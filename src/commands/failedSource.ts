import { relative } from 'node:path';
import type { Plan } from '../plan/nodes.js';
import type { RunFailure } from '../run/execute.js';
import { authorPosition } from '../sql/positions.js';

/**
 * error.source of a run: a PostgreSQL error raised by the author's SQL (an unknown column, a
 * type mismatch, a bad literal) at the policy's file:line:col, the server's position mapped back
 * through the fragment (src/sql/positions.ts). The policy file is read only now, when a
 * statement failed with a position: a run that succeeds never loads the YAML library.
 */
export async function failedSource(plan: Plan, failure: RunFailure): Promise<{ source?: string }> {
  if (failure.node === undefined || failure.position === undefined || failure.statement === undefined) return {};
  const node = plan.nodes[failure.node];
  const at = node && authorPosition(node, failure.statement, failure.position);
  if (!at) return {};
  try {
    const [{ loadPolicyFile }, { sqlPosition }] = await Promise.all([import('../load/loadPolicy.js'), import('../load/position.js')]);
    const file = await loadPolicyFile(plan.source.path);
    const { line, col } = sqlPosition(file, at.source, at.text, at.offset);
    return { source: `${relative(process.cwd(), file.path) || file.path}:${line}:${col}` };
  } catch {
    return {};
  }
}
