import { GuardCode } from '../../core/errors.js';
import { qualified } from '../../core/names.js';
import { WIPE_CASCADE_WALK, WIPE_CHILDREN_WALK } from '../../graph/truncate.js';
import { quoteLiteral } from '../../sql/quote.js';
import type { WipeReachNode } from '../nodes.js';
import { doBlock, REACH, reportRow } from '../sql.js';

/**
 * The wipe's reach: the tables TRUNCATE will empty, computed in the database from pg_catalog,
 * each counted and reported with the foreign-key path that reaches it; a keep table reached
 * stops the run (PK007).
 */
export function wipeReach(node: WipeReachNode): string {
  const listed = node.tables.map((t) => quoteLiteral(qualified(t))).join(', ');
  const keep = node.keep.map((t) => quoteLiteral(qualified(t))).join(', ');
  const hasKeep = node.keep.length > 0;
  return doBlock('reach', ['_added bigint;', '_kept text;', '_table record;', '_rows bigint;'], [
    `INSERT INTO ${REACH} SELECT t, 'listed', t::text FROM unnest(ARRAY[${listed}]::regclass[]) AS t;`,
    ...WIPE_CHILDREN_WALK,
    ...(node.cascade
      ? WIPE_CASCADE_WALK
      : []),
    ...(hasKeep
      ? [
          '-- A row lost from a partition or inheritance child of a keep table is lost from the keep table.',
          'WITH RECURSIVE kept (relid, keep) AS (',
          `  SELECT to_regclass(k), to_regclass(k) FROM unnest(ARRAY[${keep}]) AS k`,
          '  UNION',
          '  SELECT i.inhrelid::regclass, kept.keep FROM pg_inherits i JOIN kept ON kept.relid = i.inhparent',
          ')',
          "SELECT string_agg(format('%s via %s', kept.keep, r.path), '; ' ORDER BY r.path) INTO _kept",
          `FROM kept JOIN ${REACH} r ON r.relid = kept.relid;`,
          'IF _kept IS NOT NULL THEN',
          `  RAISE EXCEPTION USING ERRCODE = '${GuardCode.keepReached}', MESSAGE = 'the wipe would reach a keep table: ' || _kept;`,
          'END IF;',
        ]
      : []),
    '-- Rows each table loses: its own rows (ONLY), as its partitions and children are listed themselves.',
    `FOR _table IN SELECT r.relid, r.reason, c.relkind, format('%I.%I', n.nspname, c.relname) AS name`,
    `  FROM ${REACH} r JOIN pg_class c ON c.oid = r.relid JOIN pg_namespace n ON n.oid = c.relnamespace`,
    "  ORDER BY r.reason <> 'listed', 4 LOOP",
    "  IF _table.relkind = 'p' THEN",
    `    ${reportRow('wipe', '_table.name', "'emptied'", 'NULL', "_table.reason || '; partitioned, rows counted in its partitions'")}`,
    '  ELSE',
    "    EXECUTE format('SELECT count(*) FROM ONLY %s', _table.relid) INTO _rows;",
    `    ${reportRow('wipe', '_table.name', "'emptied'", '_rows', '_table.reason')}`,
    '  END IF;',
    'END LOOP;',
    ...(hasKeep
      ? [
          `FOR _table IN SELECT k AS name FROM unnest(ARRAY[${keep}]) AS k LOOP`,
          "  EXECUTE format('SELECT count(*) FROM %s', _table.name) INTO _rows;",
          `  ${reportRow('keep', '_table.name', "'kept'", '_rows', "'must not lose a row'")}`,
          'END LOOP;',
        ]
      : []),
  ]);
}
