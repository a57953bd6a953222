import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type postgres from 'postgres';
import { qualified } from '../core/names.js';
import { compile } from '../plan/compile.js';
import { steps } from '../plan/query.js';
import type { Policy } from '../policy.js';
import { cascadeReach } from '../run/reach.js';
import { flagIsSet } from '../run/willRun.js';
import { parseQualified } from '../sql/quote.js';
import type { RunValues } from '../values.js';
import { pathText } from './classify.js';
import type { CatalogTable } from './columns.js';
import type { ResidueOutput } from './report.js';
import { matchingKinds } from './report.js';
import type { RawFinding, TableScan } from './scan.js';
import { suggestStep } from './suggest.js';
import type { Finding, IdentifyingValue } from './types.js';

/**
 * What `purgekit residue` and a run's --residue (src/residue/inRun.ts) make of a scan: the
 * tables the policy removes (not searched while the rows are still there), and the report's
 * parts: findings with their HMAC and suggested step, tables with their outcome.
 */
export type Digest = (value: string) => string | null;

/** HMAC-SHA256 under the audit log's key (<log>.key), as the audit log writes it; null without a key (never made here). */
export function auditDigest(auditLog: string): Digest {
  let key: Buffer | undefined;
  try {
    key = readFileSync(`${auditLog}.key`);
  } catch {
    key = undefined;
  }
  return (value) => (key ? `hmac-sha256:${createHmac('sha256', key).update(value, 'utf8').digest('hex')}` : null);
}

/** What the policy removes is not residue: its steps' tables (a step behind an unset flag excepted), and what ON DELETE CASCADE empties from them. */
export async function removedTables(sql: postgres.Sql, policy: Policy, values: RunValues): Promise<Map<string, string>> {
  const plan = compile(policy);
  const runs = (flag: string | undefined) => !flag || flagIsSet(policy.flags, values, flag);
  const stepTables = [...new Set(steps(plan).flatMap((st) => (runs(st.flag) ? [qualified(st.table)] : [])))];
  const reach = await cascadeReach(sql, stepTables);
  const excluded = new Map<string, string>(stepTables.map((t) => [t, 'a step of the policy deletes from it']));
  for (const r of reach) if (r.action === 'cascade' && !excluded.has(r.table)) excluded.set(r.table, `ON DELETE CASCADE from ${r.from} (${r.constraint})`);
  return excluded;
}

/** As in every --json of purgekit: schema and name as the database spells them, next to table. */
const names = (table: string) => parseQualified(table) ?? { schema: null, name: null };

export function reportParts(
  policy: Policy,
  catalog: readonly CatalogTable[],
  scan: { readonly scans: readonly TableScan[]; readonly findings: readonly RawFinding[] },
  values: readonly IdentifyingValue[],
  excluded: ReadonlyMap<string, string>,
  digest: Digest,
): Pick<ResidueOutput, 'values' | 'excluded' | 'tables' | 'findings' | 'notScanned' | 'complete'> {
  const subject = policy.subject!;
  const ref = (table: string) => {
    const t = catalog.find((c) => c.table === table);
    return t && t.schema === policy.schema ? t.name : t ? `${t.schema}.${t.name}` : table;
  };
  const findings: Finding[] = scan.findings.map((f) => ({
    table: f.table,
    ...names(f.table),
    column: f.column.name,
    kind: f.kind,
    path: f.path ? pathText(f.path) : null,
    value: f.value.name,
    source: f.value.source,
    digest: digest(f.value.value),
    rows: f.rows,
    keys: f.keys,
    suggestion: suggestStep({ table: ref(f.table), column: f.column, kind: f.kind, path: f.path, value: f.value, subject, subjectTable: ref(qualified(subject.table)) }),
  }));
  const tables = scan.scans.map((s) => ({
    table: s.table.table,
    schema: s.table.schema,
    name: s.table.name,
    columns: s.table.columns.map((c) => c.name),
    skippedColumns: s.skippedColumns,
    estimatedRows: s.table.rows,
    bytes: s.table.bytes,
    columnBytes: s.table.columnBytes,
    ...s.outcome,
  }));
  return {
    values: values.map((v) => ({ name: v.name, source: v.source, digest: digest(v.value), matching: matchingKinds(v) })),
    excluded: [...excluded].map(([table, reason]) => ({ table, ...names(table), reason })),
    tables,
    findings,
    notScanned: scan.scans.filter((s) => s.outcome.status === 'not-scanned').map((s) => s.table.table),
    complete: scan.scans.every((s) => (s.outcome.status === 'scanned' || s.outcome.status === 'planned') && !s.skippedColumns.length),
  };
}
