import type postgres from 'postgres';
import { failureKind } from '../core/errors.js';
import { classifyCell, pathText } from './classify.js';
import type { CatalogTable } from './columns.js';
import { scanQuery, valueSets, type ValueSets } from './query.js';
import type { IdentifyingValue, MatchKind, SearchColumn, SearchTable, TableOutcome } from './types.js';

/**
 * The scan: one statement per table (query.ts), run read-only on one session, in catalog order,
 * inside a time budget. Each table's statement gets what is left of the budget as its
 * statement_timeout, so a scan stops in the middle of a large table too; the tables it did not
 * reach are named. A table whose statement fails because a column's value cannot be read as
 * searched (a json document jsonb cannot hold) is retried without that column, which is
 * reported as skipped with the server's reason.
 */
export interface RawFinding {
  readonly table: string;
  readonly column: SearchColumn;
  readonly kind: MatchKind;
  readonly path: readonly (string | number)[] | null;
  readonly value: IdentifyingValue;
  rows: number;
  readonly keys: Record<string, string | null>[];
}

export interface TableScan {
  readonly table: SearchTable;
  readonly outcome: TableOutcome;
  readonly skippedColumns: readonly { readonly column: string; readonly reason: string }[];
}

export interface ScanSettings {
  /** Milliseconds from the start after which nothing more is read; undefined: no budget. */
  readonly budgetMs?: number;
  /** Primary keys kept per finding. */
  readonly keys: number;
  /** Only plan (EXPLAIN) each table's statement: for --estimate. */
  readonly explainOnly: boolean;
  readonly progress: (line: string) => void;
}

/**
 * Where the statements go: a session of their own (`purgekit residue`, apply --residue after
 * COMMIT), or the run's open transaction (plan [--rehearse] --residue: after the steps ran, before
 * the ROLLBACK), where each table's statements run in a savepoint, so that a timeout or a cast
 * error stops that table, not the transaction.
 */
type Queries = Pick<postgres.Sql, 'unsafe'>;

interface Session {
  readonly sql: Queries;
  readonly guarded: <T>(fn: (sql: Queries) => Promise<T>) => Promise<T>;
}

const CAST_ERROR = /^(22|42804|42846|42883)/;

export async function scanTables(
  sql: postgres.Sql,
  tables: readonly CatalogTable[],
  values: readonly IdentifyingValue[],
  settings: ScanSettings,
): Promise<{ scans: TableScan[]; findings: RawFinding[] }> {
  const session = await sql.reserve();
  try {
    // Nothing the scan sends can write; the session says so too.
    await session.unsafe('SET default_transaction_read_only = on');
    const result = await scanOn({ sql: session, guarded: (fn) => fn(session) }, tables, values, settings, '');
    await session.unsafe('RESET statement_timeout');
    return result;
  } finally {
    session.release();
  }
}

/** The scan inside an open transaction (which it makes read-only): the caller rolls it back. */
export async function scanInTransaction(
  tx: postgres.TransactionSql,
  tables: readonly CatalogTable[],
  values: readonly IdentifyingValue[],
  settings: ScanSettings,
): Promise<{ scans: TableScan[]; findings: RawFinding[] }> {
  await tx.unsafe('SET LOCAL transaction_read_only = on');
  const guarded = <T>(fn: (sql: Queries) => Promise<T>) => tx.savepoint((sp) => fn(sp)) as Promise<T>;
  return scanOn({ sql: tx, guarded }, tables, values, settings, 'LOCAL ');
}

async function scanOn(
  session: Session,
  tables: readonly CatalogTable[],
  values: readonly IdentifyingValue[],
  settings: ScanSettings,
  local: string,
): Promise<{ scans: TableScan[]; findings: RawFinding[] }> {
  const sets = valueSets(values);
  const findings = new Map<string, RawFinding>();
  const scans: TableScan[] = [];
  const started = performance.now();
  for (const [i, table] of tables.entries()) {
    const label = `[${i + 1}/${tables.length}] ${table.table}`;
    if (!table.readable) {
      scans.push({ table, outcome: { status: 'skipped', reason: 'permission denied: the role may not read this table' }, skippedColumns: table.skippedColumns });
      settings.progress(`${label}: skipped (permission denied)`);
      continue;
    }
    if (!table.columns.length) {
      scans.push({ table, outcome: { status: 'skipped', reason: 'permission denied: the role may read none of its searchable columns' }, skippedColumns: table.skippedColumns });
      settings.progress(`${label}: skipped (no readable searchable column)`);
      continue;
    }
    const left = settings.budgetMs === undefined ? undefined : settings.budgetMs - (performance.now() - started);
    if (left !== undefined && left <= 0) {
      scans.push({ table, outcome: { status: 'not-scanned', reason: 'the time budget (--max-seconds) was used up before this table' }, skippedColumns: table.skippedColumns });
      continue;
    }
    await session.sql.unsafe(`SET ${local}statement_timeout = ${left === undefined ? 0 : Math.max(1, Math.ceil(left))}`);
    const result = await scanOne(session, table, sets, values, settings, findings);
    scans.push(result);
    settings.progress(`${label}: ${describe(result.outcome)}`);
  }
  const left = scans.filter((s) => s.outcome.status === 'not-scanned');
  if (left.length) settings.progress(`time budget used up: ${left.length} ${left.length === 1 ? 'table' : 'tables'} not scanned: ${left.map((s) => s.table.table).join(', ')}`);
  return { scans, findings: [...findings.values()] };
}

function describe(o: TableOutcome): string {
  switch (o.status) {
    case 'scanned':
      return `${o.access}, ${o.matchedRows} matching ${o.matchedRows === 1 ? 'row' : 'rows'}, ${o.ms} ms`;
    case 'planned':
      return `would read it by ${o.access}`;
    case 'skipped':
    case 'not-scanned':
      return `${o.status}: ${o.reason}`;
  }
}

async function scanOne(
  session: Session,
  table: CatalogTable,
  sets: ValueSets,
  values: readonly IdentifyingValue[],
  settings: ScanSettings,
  findings: Map<string, RawFinding>,
): Promise<TableScan> {
  let columns = table.columns;
  const skipped = [...table.skippedColumns];
  for (;;) {
    const query = scanQuery(table, columns, sets);
    const started = performance.now();
    try {
      const read = await session.guarded(async (sql) => {
        const access = await accessPath(sql, query.text, query.params);
        const local = new Map<string, RawFinding>();
        let matchedRows = 0;
        if (settings.explainOnly) return { access, local, matchedRows };
        await sql.unsafe(query.text, query.params as never[]).cursor(1000, (rows) => {
          for (const row of rows as unknown as Record<string, string | null>[]) {
            const key = Object.fromEntries(query.keyColumns.map((k, i) => [k, row[`k${i}`] ?? null]));
            let matched = false;
            query.columns.forEach((column, i) => {
              const cell = row[`c${i}`];
              if (cell === null || cell === undefined) return;
              for (const m of classifyCell(column.kind, cell, values)) {
                matched = true;
                const id = [column.name, m.kind, m.path ? pathText(m.path) : '', m.value.name].join('\u0000');
                let f = local.get(id);
                if (!f) local.set(id, (f = { table: table.table, column, kind: m.kind, path: m.path, value: m.value, rows: 0, keys: [] }));
                f.rows++;
                if (f.keys.length < settings.keys) f.keys.push(masked(key, values));
              }
            });
            if (matched) matchedRows++;
          }
        });
        return { access, local, matchedRows };
      });
      const { access, local, matchedRows } = read;
      if (settings.explainOnly) return { table, outcome: { status: 'planned', access }, skippedColumns: skipped };
      for (const [id, f] of local) findings.set(`${table.table}\u0000${id}`, f);
      return { table, outcome: { status: 'scanned', matchedRows, ms: Math.round(performance.now() - started), access }, skippedColumns: skipped };
    } catch (e) {
      const error = e as { code?: string; message?: string };
      if (failureKind(error) === 'statement-timeout' || failureKind(error) === 'cancelled') {
        return { table, outcome: { status: 'not-scanned', reason: `stopped by the time budget (--max-seconds) after ${Math.round(performance.now() - started)} ms` }, skippedColumns: skipped };
      }
      if (typeof error.code !== 'string' || !error.code) throw e;
      if (!CAST_ERROR.test(error.code) || columns.length === 0) {
        return { table, outcome: { status: 'skipped', reason: `${error.code}: ${scrub(error.message ?? '', values)}` }, skippedColumns: skipped };
      }
      // Which column cannot be read as searched: each alone, then the rest without it.
      const bad: SearchColumn[] = [];
      for (const column of columns) {
        const alone = scanQuery(table, [column], sets);
        const failed = await session.guarded((sql) => sql.unsafe(`SELECT count(*) FROM (${alone.text}) AS probe`, alone.params as never[])).then(
          () => undefined,
          (x: { code?: string; message?: string }) => x,
        );
        if (failed && CAST_ERROR.test(failed.code ?? '')) {
          bad.push(column);
          skipped.push({ column: column.name, reason: `its values cannot be read as ${column.kind === 'json' ? 'jsonb' : 'text'} (${failed.code}: ${scrub(failed.message ?? '', values)})` });
        } else if (failed) throw failed;
      }
      if (!bad.length) return { table, outcome: { status: 'skipped', reason: `${error.code}: ${scrub(error.message ?? '', values)}` }, skippedColumns: skipped };
      columns = columns.filter((c) => !bad.includes(c));
      if (!columns.length) return { table, outcome: { status: 'skipped', reason: 'no searchable column can be read as searched' }, skippedColumns: skipped };
    }
  }
}

/** How the server will read the table for this statement: `seq scan`, `index scan (x_idx)`, `bitmap index scan (a_idx, b_idx)`. */
async function accessPath(session: Queries, text: string, params: readonly unknown[]): Promise<string> {
  const [row] = (await session.unsafe(`EXPLAIN (FORMAT JSON) ${text}`, params as never[])) as unknown as { 'QUERY PLAN': unknown }[];
  const nodes: { type: string; index?: string }[] = [];
  const walk = (n: Record<string, unknown>) => {
    const type = String(n['Node Type']);
    if (/Scan$/.test(type) && type !== 'Function Scan' && type !== 'Subquery Scan') nodes.push({ type, ...(typeof n['Index Name'] === 'string' ? { index: n['Index Name'] } : {}) });
    for (const child of (n['Plans'] as Record<string, unknown>[] | undefined) ?? []) walk(child);
  };
  const plan = (row!['QUERY PLAN'] as { Plan: Record<string, unknown> }[])[0]!.Plan;
  walk(plan);
  const indexes = [...new Set(nodes.flatMap((n) => (n.index ? [n.index] : [])))];
  const kinds = [...new Set(nodes.filter((n) => n.type !== 'Bitmap Heap Scan').map((n) => n.type.toLowerCase()))];
  return `${kinds.join(' + ') || 'no scan'}${indexes.length ? ` (${indexes.join(', ')})` : ''}`;
}

/** A key that is itself a searched value (a table keyed by email) is shown by the value's name. */
function masked(key: Record<string, string | null>, values: readonly IdentifyingValue[]): Record<string, string | null> {
  return Object.fromEntries(
    Object.entries(key).map(([k, v]) => {
      const hit = v !== null && values.find((x) => x.value.toLowerCase() === v.toLowerCase());
      return [k, hit ? `[${hit.name}]` : v];
    }),
  );
}

/** Server messages can quote a value: never print one. */
function scrub(message: string, values: readonly IdentifyingValue[]): string {
  return values.reduce((m, v) => (v.value.length >= 3 ? m.split(v.value).join(`[${v.name}]`) : m), message);
}
