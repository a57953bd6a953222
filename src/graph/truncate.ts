import type { ForeignKey } from '../catalog/catalog.js';
import { walk, type Edge, type Graph, type Reached } from './graph.js';

/**
 * What TRUNCATE empties. Without CASCADE: the listed tables and their partitions (a
 * referencing table not listed makes it fail). With CASCADE: also, transitively, every table with
 * a foreign key to an emptied one, whatever its ON DELETE action.
 *
 * Twice, on purpose: here over a catalog read now (lint), and below as the PL/pgSQL walk the
 * generated wipe runs, which must compute it inside the standalone file at run time from
 * pg_catalog (the schema may have changed since the file was compiled).
 */
export interface TruncateReached<E extends Edge = ForeignKey> extends Reached<E> {
  /** The listed table the chain starts from. */
  readonly from: string;
}

/**
 * The tables TRUNCATE ... CASCADE of `listed` empties besides the listed ones, each with its
 * shortest chain from a listed table (the first listed on a tie), in the order first reached.
 */
export function truncateReach<E extends Edge>(graph: Graph<E>, listed: readonly string[]): ReadonlyMap<string, TruncateReached<E>> {
  const isListed = new Set(listed);
  const reach = new Map<string, TruncateReached<E>>();
  for (const from of listed) {
    for (const d of walk(graph.foreignKeys, [from])) {
      const known = reach.get(d.table);
      if (isListed.has(d.table) || (known && known.path.length <= d.path.length)) continue;
      reach.set(d.table, { ...d, from });
    }
  }
  return reach;
}

/** The generated wipe's reach: one row per table it empties, with why and the path. */
export const WIPE_REACH = 'pg_temp.purgekit_wipe_reach';

export const WIPE_REACH_TABLE = 'CREATE TEMP TABLE purgekit_wipe_reach (relid regclass PRIMARY KEY, reason text NOT NULL, path text NOT NULL) ON COMMIT DROP';

/** PL/pgSQL (`_added bigint`): adds the partitions and inheritance children of what is in WIPE_REACH. */
export const WIPE_CHILDREN_WALK: readonly string[] = [
  '-- TRUNCATE without ONLY also empties the partitions and inheritance children of a listed table.',
  'LOOP',
  `  INSERT INTO ${WIPE_REACH}`,
  "  SELECT i.inhrelid, format('%s of %s', CASE WHEN c.relispartition THEN 'partition' ELSE 'inheritance child' END, i.inhparent::regclass),",
  "    format('%s <- %s (%s)', r.path, i.inhrelid::regclass, CASE WHEN c.relispartition THEN 'partition' ELSE 'inheritance child' END)",
  `  FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid JOIN ${WIPE_REACH} r ON r.relid = i.inhparent`,
  '  ORDER BY i.inhrelid',
  '  ON CONFLICT DO NOTHING;',
  '  GET DIAGNOSTICS _added = ROW_COUNT;',
  '  EXIT WHEN _added = 0;',
  'END LOOP;',
];

/** PL/pgSQL (`_added bigint`): adds, transitively, what TRUNCATE ... CASCADE empties through foreign keys. */
export const WIPE_CASCADE_WALK: readonly string[] = [
  '-- CASCADE then empties every table with a foreign key to an emptied one, and its partitions',
  '-- (not its inheritance children).',
  'LOOP',
  `  INSERT INTO ${WIPE_REACH}`,
  "  SELECT DISTINCT ON (con.conrelid) con.conrelid, format('references %s (foreign key %s)', con.confrelid::regclass, con.conname),",
  "    format('%s <- %s (%s)', r.path, con.conrelid::regclass, con.conname)",
  `  FROM pg_constraint con JOIN ${WIPE_REACH} r ON r.relid = con.confrelid`,
  `  WHERE con.contype = 'f' AND con.conrelid NOT IN (SELECT relid FROM ${WIPE_REACH})`,
  '  ORDER BY con.conrelid, con.conname',
  '  ON CONFLICT DO NOTHING;',
  '  GET DIAGNOSTICS _added = ROW_COUNT;',
  `  INSERT INTO ${WIPE_REACH}`,
  "  SELECT i.inhrelid, format('partition of %s', i.inhparent::regclass), format('%s <- %s (partition)', r.path, i.inhrelid::regclass)",
  `  FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid AND c.relispartition JOIN ${WIPE_REACH} r ON r.relid = i.inhparent`,
  '  ORDER BY i.inhrelid',
  '  ON CONFLICT DO NOTHING;',
  '  EXIT WHEN _added = 0 AND NOT FOUND;',
  'END LOOP;',
];
