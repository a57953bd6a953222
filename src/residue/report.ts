import type { Finding, IdentifyingValue, MatchKind, TableOutcome } from './types.js';

/**
 * The residue report: the --json document (docs/residue-output.schema.json) and the text a
 * person reads. Neither holds a searched value: values are named (`email`, `id`) and, when the
 * audit log's key exists, given as its HMAC (the same digest the audit log records).
 */
export interface ResidueOutput {
  readonly version: 1;
  readonly command: 'residue';
  readonly policy: string;
  readonly database: string;
  readonly estimate: boolean;
  /** How the subject rows were found (`--email`, `--value id`), null when only --value gave values. */
  readonly lookup: string | null;
  /** Subject rows the lookup found; null when no lookup ran. */
  readonly subjects: number | null;
  readonly values: readonly { readonly name: string; readonly source: IdentifyingValue['source']; readonly digest: string | null; readonly matching: readonly MatchKind[] }[];
  /** Tables not searched because the policy's steps delete from them (or a cascade from those does). */
  readonly excluded: readonly { readonly table: string; readonly schema: string | null; readonly name: string | null; readonly reason: string }[];
  readonly tables: readonly ({
    readonly table: string;
    readonly schema: string;
    readonly name: string;
    readonly columns: readonly string[];
    readonly skippedColumns: readonly { readonly column: string; readonly reason: string }[];
    readonly estimatedRows: number;
    readonly bytes: number;
    readonly columnBytes: number | null;
  } & TableOutcome)[];
  readonly findings: readonly Finding[];
  /** Tables left when the time budget ran out. */
  readonly notScanned: readonly string[];
  /** Every table scanned and every column read: a clean report proves absence only then. */
  readonly complete: boolean;
  readonly exitCode: number;
}

export function matchingKinds(v: IdentifyingValue): MatchKind[] {
  return [
    'exact',
    ...(v.email || v.substring ? (['case-insensitive'] as const) : []),
    'json',
    'array-element',
    ...(v.substring ? (['substring'] as const) : []),
  ];
}

export function humanResidue(out: ResidueOutput): string[] {
  const lines: string[] = [];
  const size = (n: number) => (n >= 1 << 30 ? `${(n / (1 << 30)).toFixed(1)} GB` : n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(1)} MB` : `${Math.round(n / 1024)} kB`);
  lines.push(`residue of ${out.policy} in ${out.database}: ${out.values.length} identifying ${out.values.length === 1 ? 'value' : 'values'} (${out.values.map((v) => v.name).join(', ')})`);
  if (out.excluded.length) lines.push(`not searched, the policy removes them: ${out.excluded.map((e) => e.table).join(', ')}`);
  if (out.estimate) {
    const rows = out.tables.reduce((n, t) => n + Math.max(0, t.estimatedRows), 0);
    const bytes = out.tables.reduce((n, t) => n + t.bytes, 0);
    lines.push(`estimate: ${out.tables.length} tables, ~${rows.toLocaleString('en-US')} rows, ${size(bytes)} on disk (searched columns ~${size(out.tables.reduce((n, t) => n + (t.columnBytes ?? 0), 0))})`);
    for (const t of out.tables) lines.push(`  ${t.table}: ~${Math.max(0, t.estimatedRows).toLocaleString('en-US')} rows, ${size(t.bytes)}, ${t.columns.length} columns, ${t.status === 'planned' || t.status === 'scanned' ? t.access : t.reason}`);
    return lines;
  }
  if (!out.findings.length) lines.push(out.complete ? 'no residue: none of the values appears outside what the policy removes' : 'no residue found in what was scanned (incomplete: see below)');
  for (const f of out.findings) {
    const where = `${f.table}.${f.column}${f.path !== null ? ` at ${f.path || '(the whole document)'}` : ''}`;
    const names = f.keys.length ? Object.keys(f.keys[0]!).join('/') : '';
    const keys = f.keys.map((k) => Object.values(k).join('/')).join(', ');
    lines.push(`RESIDUE ${where}: ${f.value} (${f.kind}) in ${f.rows} ${f.rows === 1 ? 'row' : 'rows'}${keys ? ` (${names} ${keys}${f.rows > f.keys.length ? ', ...' : ''})` : ''}`);
    for (const l of f.suggestion.split('\n')) lines.push(`    ${l}`);
  }
  for (const t of out.tables) {
    if (t.status === 'skipped' || t.status === 'not-scanned') lines.push(`${t.status === 'skipped' ? 'skipped' : 'not scanned'}: ${t.table}: ${t.reason}`);
    for (const c of t.skippedColumns) lines.push(`skipped column: ${t.table}.${c.column}: ${c.reason}`);
  }
  const scanned = out.tables.filter((t) => t.status === 'scanned').length;
  lines.push(`${scanned} of ${out.tables.length} tables scanned, ${out.findings.length} ${out.findings.length === 1 ? 'finding' : 'findings'}${out.complete ? '' : ' (incomplete)'}`);
  return lines;
}
