import { qualified } from '../../core/names.js';
import type { WipeNode } from '../nodes.js';

/** The wipe: the reach table (the reach walk itself is wipeReach.ts) and the TRUNCATE. */
export { WIPE_REACH_TABLE } from '../../graph/truncate.js';

export function truncate(node: WipeNode): string {
  const tables = node.tables.map((t) => `  ${qualified(t)}`).join(',\n');
  const options = [node.restartIdentity ? 'RESTART IDENTITY' : 'CONTINUE IDENTITY', node.cascade ? 'CASCADE' : 'RESTRICT'].join(' ');
  return `TRUNCATE TABLE\n${tables}\n${options}`;
}
