import type { SideEffects } from '../outbox/runner.js';
import type { RunResidue } from '../residue/inRun.js';
import type { ReportRow, TableChange } from './changes.js';
import type { RunMode, StepTiming } from './execute.js';
import type { Target } from '../db/connect.js';
import type { Reach } from './reach.js';
import { parseQualified } from '../sql/quote.js';
import { itemLabel } from '../plan/nodes.js';

/**
 * The one JSON document `--json` prints on stdout. Its shape is docs/run-output.schema.json;
 * version stays 1 while fields are only added.
 */
export interface RunOutput {
  readonly version: 1;
  readonly command: 'plan' | 'apply' | 'verify';
  readonly mode: RunMode;
  readonly policy: string;
  readonly kind: string;
  /** sha256 of the generated file, as its Checksum line records it. */
  readonly planSha256: string;
  readonly database: Target;
  /**
   * committed | rolled-back (rehearse, or an apply that did not commit) | read-only (plan and
   * verify: nothing was written) | nothing-matched | refused | unknown (the connection was lost
   * after COMMIT was sent and the server could not be asked: see error.message)
   */
  readonly outcome: 'committed' | 'rolled-back' | 'read-only' | 'nothing-matched' | 'refused' | 'unknown';
  readonly exitCode: number;
  readonly subject: { readonly table: string; readonly matched: number } | null;
  readonly steps: readonly {
    readonly step: number;
    readonly table: string;
    readonly outcome: string;
    readonly rows: number | null;
    readonly detail: string | null;
    readonly ms: number | null;
  }[];
  readonly wipe: readonly { readonly table: string; readonly rows: number | null; readonly reason: string | null }[];
  readonly preserved: readonly { readonly rule: string; readonly table: string; readonly rows: number | null }[];
  readonly expectations: readonly { readonly name: string; readonly outcome: string; readonly detail: string | null }[];
  readonly tables: readonly TableChange[];
  /** Tables the steps' deletes can change through foreign keys (ON DELETE CASCADE / SET NULL / SET DEFAULT). */
  readonly reach: readonly (Reach & { readonly declared: boolean; readonly ownStep: boolean })[];
  /** apply --backup: where the removed rows are (null without --backup or when nothing was committed). */
  readonly backup: { readonly dir: string; readonly files: number; readonly rows: number } | null;
  /** line: where the failed statement starts in the generated file (file:line), when it is one of the file's. */
  readonly error: { readonly code: string; readonly message: string; readonly at: string | null; readonly line?: string; readonly source?: string } | null;
  /** after_commit: what plan would queue, or what apply queued and how each job ended (absent: the policy has none). */
  readonly sideEffects?: SideEffects;
  /** plan|apply --residue: where the subject's values still are after the steps (src/residue/inRun.ts); absent without --residue. */
  readonly residue?: RunResidue;
  readonly startedAt: string;
  readonly durationMs: number;
}

export function summarize(report: readonly ReportRow[], timings: readonly StepTiming[]): Pick<RunOutput, 'subject' | 'steps' | 'wipe' | 'preserved' | 'expectations'> {
  const subject = report.find((r) => r.item.kind === 'subject');
  const steps: RunOutput['steps'][number][] = [];
  const wipe: RunOutput['wipe'][number][] = [];
  const preserved: RunOutput['preserved'][number][] = [];
  const expectations: RunOutput['expectations'][number][] = [];
  for (const r of report) {
    const item = r.item;
    switch (item.kind) {
      case 'subject':
        break;
      case 'step':
        steps.push({ step: item.step, table: r.target ?? '', outcome: r.outcome, rows: r.rows, detail: r.detail, ms: timings.find((t) => t.step === item.step)?.ms ?? null });
        break;
      case 'wipe':
        wipe.push({ table: r.target ?? '', rows: r.rows, reason: r.detail });
        break;
      case 'preserve':
      case 'keep':
        preserved.push({ rule: itemLabel(item), table: r.target ?? '', rows: r.rows });
        break;
      case 'expect':
        expectations.push({ name: r.target ?? '', outcome: r.outcome, detail: r.detail });
        break;
    }
  }
  return { subject: subject ? { table: subject.target ?? '', matched: subject.rows ?? 0 } : null, steps, wipe, preserved, expectations };
}

/** A table's schema and name as the database spells them (unquoted); null if it is not schema.name. */
export interface TableNames {
  readonly schema: string | null;
  readonly name: string | null;
}

type Named<T> = T & TableNames;

/** What --json prints: the run output with every table also given as schema and name next to its display form. */
export interface RunJson extends Omit<RunOutput, 'subject' | 'steps' | 'wipe' | 'preserved' | 'tables' | 'reach'> {
  readonly subject: Named<NonNullable<RunOutput['subject']>> | null;
  readonly steps: readonly Named<RunOutput['steps'][number]>[];
  readonly wipe: readonly Named<RunOutput['wipe'][number]>[];
  readonly preserved: readonly Named<RunOutput['preserved'][number]>[];
  readonly tables: readonly Named<RunOutput['tables'][number]>[];
  readonly reach: readonly (Named<RunOutput['reach'][number]> & { readonly fromSchema: string | null; readonly fromName: string | null })[];
}

export function tableNames(table: string): TableNames {
  const parts = parseQualified(table);
  return { schema: parts?.schema ?? null, name: parts?.name ?? null };
}

/** The --json document of a run (docs/run-output.schema.json). */
export function runJson(out: RunOutput): RunJson {
  const named = <T extends { readonly table: string }>(x: T): Named<T> => ({ ...x, ...tableNames(x.table) });
  return {
    ...out,
    subject: out.subject && named(out.subject),
    steps: out.steps.map(named),
    wipe: out.wipe.map(named),
    preserved: out.preserved.map(named),
    tables: out.tables.map(named),
    reach: out.reach.map((r) => {
      const from = tableNames(r.from);
      return { ...named(r), fromSchema: from.schema, fromName: from.name };
    }),
  };
}

/** People-facing lines for stderr. */
export function humanReport(out: RunOutput, color: boolean): string[] {
  const paint = (code: number, text: string) => (color ? `\u001b[${code}m${text}\u001b[0m` : text);
  const lines: string[] = [];
  if (out.subject) lines.push(`subject: ${out.subject.matched} ${out.subject.table} ${out.subject.matched === 1 ? 'row' : 'rows'} matched`);
  const rows: string[][] = out.steps.map((s) => [String(s.step), s.table, s.outcome, s.rows === null ? '' : String(s.rows), s.ms === null ? '' : `${s.ms} ms`, s.detail ?? '']);
  rows.push(...out.wipe.map((w) => ['', w.table, 'emptied', w.rows === null ? '' : String(w.rows), '', w.reason ?? '']));
  rows.push(...out.preserved.map((p) => ['', p.table, p.rule === itemLabel({ kind: 'keep' }) ? 'kept' : 'preserved', p.rows === null ? '' : String(p.rows), '', p.rule]));
  if (rows.length) lines.push(...table(['#', 'table', 'outcome', 'rows', 'time', 'detail'], rows));
  // A table whose own step runs first (or is the same) changes only if that step leaves rows pointing at a
  // removed one: said once, not per table (every table of a discovered policy is one).
  const covered = out.reach.filter((r) => !r.declared && r.ownStep);
  for (const r of out.reach.filter((x) => !covered.includes(x))) {
    const how = `ON DELETE ${r.action.toUpperCase()} from ${r.from} (${r.constraint})`;
    lines.push(`may change: ${r.table}, ${how}${r.declared ? ', declared in cascades' : paint(33, ', not declared in cascades: apply fails if it changes')}`);
  }
  const coveredTables = [...new Set(covered.map((r) => r.table))];
  if (coveredTables.length) {
    lines.push(`may change only rows their own steps leave: ${coveredTables.length} ${coveredTables.length === 1 ? 'table' : 'tables'} (${coveredTables.join(', ')}), reached by ON DELETE from tables removed later`);
  }
  const cascaded = out.tables.filter((t) => t.plannedAs === 'cascade');
  for (const t of cascaded) {
    const changes = [`${t.deleted} deleted`, t.updated && `${t.updated} updated`, t.inserted && `${t.inserted} inserted`].filter(Boolean).join(', ');
    lines.push(`cascade: ${t.table}: ${changes} in all, ${t.removedBySteps} of them by steps (declared in cascades)`);
  }
  for (const e of out.expectations) lines.push(`expect: ${e.name}: ${e.outcome === 'ok' ? paint(32, 'ok') : e.outcome === 'skipped' ? e.outcome : paint(31, e.outcome)} (${e.detail ?? ''})`);
  // Said once: a refusal or a committed run's pending work is not a "failed" run.
  if (out.error && (out.outcome === 'nothing-matched' || out.outcome === 'refused')) lines.push(out.error.message);
  else if (out.error && out.outcome === 'committed') lines.push(paint(33, out.error.message));
  else if (out.error) lines.push(paint(31, `failed: ${out.error.message}${out.error.at ? `\n  at: ${out.error.at}${out.error.line ? ` (${out.error.line})` : ''}` : ''}${out.error.source ? `\n  in the policy: ${out.error.source}` : ''}`));
  const verdict: Record<RunOutput['outcome'], string> = {
    committed: paint(32, `committed in ${out.durationMs} ms`),
    'rolled-back': out.error ? paint(31, 'rolled back: nothing was changed') : `rolled back (${out.mode}): nothing was changed`,
    'read-only': `read-only (${out.mode}): nothing was changed`,
    'nothing-matched': 'nothing matched: nothing was changed',
    refused: paint(31, 'refused: nothing was changed'),
    unknown: paint(31, 'outcome unknown: see above'),
  };
  lines.push(verdict[out.outcome]);
  return lines;
}

function table(head: string[], rows: string[][]): string[] {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 || i === 3 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(head), ...rows.map(line)];
}
