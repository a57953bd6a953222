import { qualified } from '../../compile/compile.js';
import type { WipeNode } from '../nodes.js';

/** The wipe: the reach table (the reach walk itself is compile/compile.ts wipeReach) and the TRUNCATE. */

export const WIPE_REACH_TABLE = 'CREATE TEMP TABLE purgekit_wipe_reach (relid regclass PRIMARY KEY, reason text NOT NULL, path text NOT NULL) ON COMMIT DROP';

export function truncate(node: WipeNode): string {
  const tables = node.tables.map((t) => `  ${qualified(t)}`).join(',\n');
  const options = [node.restartIdentity ? 'RESTART IDENTITY' : 'CONTINUE IDENTITY', node.cascade ? 'CASCADE' : 'RESTRICT'].join(' ');
  return `TRUNCATE TABLE\n${tables}\n${options}`;
}
