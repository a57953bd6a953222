import type { TableName } from '../policy.js';
import { quoteIdent, quoteLiteral } from '../sql/quote.js';
import type { WipeReachNode } from '../plan/nodes.js';
import { GuardCode } from '../plan/nodes.js';
import { doBlock, REACH, reportRow } from '../plan/sql.js';

export function qualified(t: TableName): string {
  return `${quoteIdent(t.schema)}.${quoteIdent(t.name)}`;
}

/** A table name as shown to people and stored in the report: schema.name, quoted only where SQL needs it. */
export function display(t: TableName): string {
  return qualified(t);
}

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
    '-- TRUNCATE without ONLY also empties the partitions and inheritance children of a listed table.',
    'LOOP',
    `  INSERT INTO ${REACH}`,
    "  SELECT i.inhrelid, format('%s of %s', CASE WHEN c.relispartition THEN 'partition' ELSE 'inheritance child' END, i.inhparent::regclass),",
    "    format('%s <- %s (%s)', r.path, i.inhrelid::regclass, CASE WHEN c.relispartition THEN 'partition' ELSE 'inheritance child' END)",
    `  FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid JOIN ${REACH} r ON r.relid = i.inhparent`,
    '  ORDER BY i.inhrelid',
    '  ON CONFLICT DO NOTHING;',
    '  GET DIAGNOSTICS _added = ROW_COUNT;',
    '  EXIT WHEN _added = 0;',
    'END LOOP;',
    ...(node.cascade
      ? [
          '-- CASCADE then empties every table with a foreign key to an emptied one, and its partitions',
          '-- (not its inheritance children).',
          'LOOP',
          `  INSERT INTO ${REACH}`,
          "  SELECT DISTINCT ON (con.conrelid) con.conrelid, format('references %s (foreign key %s)', con.confrelid::regclass, con.conname),",
          "    format('%s <- %s (%s)', r.path, con.conrelid::regclass, con.conname)",
          `  FROM pg_constraint con JOIN ${REACH} r ON r.relid = con.confrelid`,
          `  WHERE con.contype = 'f' AND con.conrelid NOT IN (SELECT relid FROM ${REACH})`,
          '  ORDER BY con.conrelid, con.conname',
          '  ON CONFLICT DO NOTHING;',
          '  GET DIAGNOSTICS _added = ROW_COUNT;',
          `  INSERT INTO ${REACH}`,
          "  SELECT i.inhrelid, format('partition of %s', i.inhparent::regclass), format('%s <- %s (partition)', r.path, i.inhrelid::regclass)",
          `  FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid AND c.relispartition JOIN ${REACH} r ON r.relid = i.inhparent`,
          '  ORDER BY i.inhrelid',
          '  ON CONFLICT DO NOTHING;',
          '  EXIT WHEN _added = 0 AND NOT FOUND;',
          'END LOOP;',
        ]
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

export function oneLine(text: string): string {
  return text.replace(/\s+/g, ' ').trim();
}

export function kebab(name: string): string {
  return name.replaceAll('_', '-');
}

export function plural(n: number, word: string): string {
  return n === 1 ? word : `${word}s`;
}
