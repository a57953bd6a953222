import { readCatalog, type Catalog } from '../catalog/catalog.js';
import { ExitCode, UsageError } from '../core/errors.js';
import { connect, currentDatabase } from '../db/connect.js';
import { resolveTable } from '../graph/resolve.js';

/**
 * purgekit counts: rows per table, the before/after check seed 002 asks for around maintenance.
 * Exact counts by default (one count(*) per table; a partitioned table counts its partitions),
 * the planner's estimates with --estimate (free, but stale until ANALYZE). Exit 4 when a
 * critical table is empty.
 */
export interface CountsOptions {
  readonly connection?: string;
  readonly critical: readonly string[];
  readonly estimate: boolean;
  readonly schemas?: readonly string[];
}

export interface CountsOutput {
  readonly version: 1;
  readonly database: string;
  readonly estimate: boolean;
  /** table: as SQL spells it (`app."User"`), for people; schema and name: as the database spells them. */
  readonly tables: readonly { readonly table: string; readonly schema: string; readonly name: string; readonly rows: number | null; readonly empty: boolean; readonly critical: boolean }[];
  /** Critical tables that are empty (their `table` in tables): the run fails (exit 4) when this is not empty. */
  readonly emptyCritical: readonly string[];
}

export async function countsCommand(options: CountsOptions): Promise<{ output: CountsOutput; exitCode: number; lines: string[] }> {
  const conn = connect(options.connection);
  try {
    const database = await currentDatabase(conn);
    const catalog = await readCatalog(conn.sql, options.schemas ? { schemas: options.schemas } : {});
    const critical = new Set(options.critical.map((name) => criticalTable(catalog, name)));
    const tables = [];
    for (const table of catalog.tables.values()) {
      let rows: number | null;
      if (options.estimate) {
        rows = table.estimatedRows < 0 ? null : table.estimatedRows;
      } else {
        const [r] = await conn.sql.unsafe<{ n: string }[]>(`SELECT count(*) AS n FROM ${table.qualified}`);
        rows = Number(r!.n);
      }
      tables.push({ table: table.qualified, schema: table.schema, name: table.name, rows, empty: rows === 0, critical: critical.has(table.qualified) });
    }
    const emptyCritical = tables.filter((t) => t.critical && t.empty).map((t) => t.table);
    const output: CountsOutput = { version: 1, database, estimate: options.estimate, tables, emptyCritical };
    return { output, exitCode: emptyCritical.length ? ExitCode.checkFailed : ExitCode.ok, lines: humanCounts(output) };
  } finally {
    await conn.sql.end({ timeout: 5 });
  }
}

/** schema.table as SQL spells it, or a bare name: in public, else the one schema that has it. */
function criticalTable(catalog: Catalog, name: string): string {
  const r = resolveTable(catalog, name, { anySchema: true });
  if (r.kind === 'found') return r.table.qualified;
  if (r.kind === 'ambiguous') throw new UsageError(`--critical ${name} is ambiguous: ${r.tables.map((t) => t.qualified).join(', ')}; name the schema`);
  throw new UsageError(`--critical ${name}: no such table${r.hint ? ` (did you mean ${r.hint}?)` : ''}`);
}

function humanCounts(out: CountsOutput): string[] {
  const width = Math.max(5, ...out.tables.map((t) => t.table.length));
  const lines = [`${out.estimate ? 'estimated rows (pg_class.reltuples; run ANALYZE for fresh figures)' : 'exact rows'} in ${out.database}:`];
  for (const t of out.tables) {
    const rows = t.rows === null ? 'never analyzed' : (out.estimate ? '~' : '') + t.rows.toLocaleString('en-US');
    const flags = [t.empty ? 'EMPTY' : '', t.critical ? 'critical' : ''].filter(Boolean).join(', ');
    lines.push(`  ${t.table.padEnd(width)}  ${rows.padStart(14)}${flags ? `  ${flags}` : ''}`);
  }
  const empty = out.tables.filter((t) => t.empty).length;
  lines.push(`${out.tables.length} tables, ${empty} empty${out.emptyCritical.length ? `; critical and empty: ${out.emptyCritical.join(', ')}` : ''}`);
  return lines;
}
