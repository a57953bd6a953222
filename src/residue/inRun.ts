import type postgres from 'postgres';
import { ExitCode } from '../core/errors.js';
import type { Policy } from '../policy.js';
import type { RunMode } from '../run/execute.js';
import type { RunOutput } from '../run/output.js';
import type { RunValues } from '../values.js';
import { auditDigest, removedTables, reportParts } from './build.js';
import { searchableTables, type CatalogTable } from './columns.js';
import { humanResidue, type ResidueOutput } from './report.js';
import { scanInTransaction, scanTables, type RawFinding, type TableScan } from './scan.js';
import { checkSchemas, selectTables } from './select.js';
import type { IdentifyingValue } from './types.js';
import { capturedValues, checkIdentifiers } from './values.js';

/**
 * plan|apply --residue (issue 14, item 2): the residue scan of a run.
 *
 *   apply              the subject's identifying values are read inside the purge's transaction,
 *                      before its first delete; after COMMIT (and its side effects) the scan
 *                      searches every table for them: what is left is what the policy missed.
 *                      --fail-on-residue: a finding exits 9 (committed, residue found: a committed
 *                      purge cannot be rolled back, the policy needs another step).
 *   plan --rehearse    the same values, the scan inside the rehearsal's transaction after its steps
 *                      ran, before the ROLLBACK: residue found before anything is committed.
 *   plan               a dry run deletes nothing, so, like purgekit residue, the scan skips the
 *                      tables the policy removes (and what ON DELETE CASCADE empties from them).
 *
 * After the steps ran nothing needs skipping: the rows the policy removes are gone, so its own
 * tables are searched too. Schema purgekit (outbox, journal, ledger) is never searched: an outbox
 * job holds its captured values until it has run (purgekit outbox list). With --fail-on-residue
 * plan exits 4 on a finding (a check failed, nothing changed). An incomplete scan (the time budget,
 * a table the role cannot read) is said, with complete false, and changes no exit code.
 */
export interface RunResidueOptions {
  readonly schemas?: readonly string[];
  readonly include: readonly string[];
  readonly exclude: readonly string[];
  readonly maxSeconds?: number;
  readonly failOnResidue: boolean;
}

/** RunOutput.residue (docs/run-output.schema.json). */
export type RunResidue = Pick<ResidueOutput, 'values' | 'excluded' | 'tables' | 'findings' | 'notScanned' | 'complete'> & {
  /** in-transaction: plan or rehearse, before the ROLLBACK; after-commit: apply; not-run: see reason. */
  readonly scan: 'in-transaction' | 'after-commit' | 'not-run';
  /** Why the scan did not run (the run did not commit, the values could not be read); null when it ran. */
  readonly reason: string | null;
  /** Subject rows whose values were read in the run's transaction (null: not read). */
  readonly subjects: number | null;
};

const KEYS = 5;
const OWN_SCHEMA = 'purgekit';

export class ResidueRun {
  private captured: { values: IdentifyingValue[]; subjects: number } | undefined;
  private failed: string | undefined;
  private result: RunResidue | undefined;

  private constructor(
    private readonly policy: Policy,
    private readonly values: RunValues,
    private readonly mode: RunMode,
    private readonly options: RunResidueOptions,
    private readonly tables: readonly CatalogTable[],
    private readonly excluded: ReadonlyMap<string, string>,
    private readonly catalog: readonly CatalogTable[],
    private readonly auditLog: string,
    private readonly say: (line: string) => void,
  ) {}

  /** Before the run: a purge policy whose identifiers are columns, known schemas and tables (usage errors before anything runs). */
  static async prepare(sql: postgres.Sql, policy: Policy, values: RunValues, mode: RunMode, options: RunResidueOptions, auditLog: string, say: (line: string) => void): Promise<ResidueRun> {
    await checkIdentifiers(sql, policy);
    if (options.schemas) await checkSchemas(sql, options.schemas);
    const catalog = await searchableTables(sql, options.schemas);
    const excluded = new Map(mode === 'plan' ? await removedTables(sql, policy, values) : []);
    for (const t of catalog) if (t.schema === OWN_SCHEMA) excluded.set(t.table, "purgekit's own schema (an outbox job holds its captured values until it has run)");
    const tables = (await selectTables(sql, catalog, options)).filter((t) => !excluded.has(t.table));
    return new ResidueRun(policy, values, mode, options, tables, excluded, catalog, auditLog, say);
  }

  /** The hooks of execute() (RunControl). */
  control(): { beforeChanges: (tx: postgres.TransactionSql) => Promise<void>; beforeRollback?: (tx: postgres.TransactionSql) => Promise<void> } {
    return {
      beforeChanges: (tx) => this.capture(tx),
      ...(this.mode === 'apply' ? {} : { beforeRollback: (tx: postgres.TransactionSql) => this.scan('in-transaction', (t, v, s) => scanInTransaction(tx, t, v, s)) }),
    };
  }

  /** apply, after COMMIT and its side effects: the scan on a session of its own. */
  async afterCommit(sql: postgres.Sql): Promise<void> {
    await this.scan('after-commit', (t, v, s) => scanTables(sql, t, v, s));
  }

  /** The run's output with its residue block, the scan's report on stderr, and the exit code --fail-on-residue asks for. */
  finish(output: RunOutput, database: string, committed: boolean): RunOutput {
    const residue = this.result ?? this.notRun(committed ? (this.failed ?? 'the identifying values were not read') : `nothing was ${this.mode === 'apply' ? 'committed' : 'run to the end'} (${output.outcome})`);
    if (residue.scan === 'not-run') this.say(`residue: not scanned: ${residue.reason}`);
    else for (const line of humanResidue({ version: 1, command: 'residue', policy: this.policy.name, database, estimate: false, lookup: null, ...residue, exitCode: 0 })) this.say(line);
    const found = residue.findings.length;
    if (!found || !this.options.failOnResidue || output.exitCode !== ExitCode.ok) return { ...output, residue };
    const what = `the residue scan found the subject's values in ${found} ${found === 1 ? 'place' : 'places'}: ${residue.findings.map((f) => `${f.table}.${f.column}`).join(', ')}`;
    return committed
      ? { ...output, residue, exitCode: ExitCode.committedResidue, error: { code: 'RESIDUE', message: `COMMITTED, but ${what} (--fail-on-residue): add the suggested steps to the policy`, at: null } }
      : { ...output, residue, exitCode: ExitCode.checkFailed, error: { code: 'RESIDUE', message: `${what} (--fail-on-residue); nothing was committed`, at: null } };
  }

  private async capture(tx: postgres.TransactionSql): Promise<void> {
    try {
      this.captured = await capturedValues(tx, this.policy, this.values);
    } catch (e) {
      this.failed = `the identifying values could not be read in the run's transaction (${(e as { code?: string }).code ?? 'error'})`;
    }
  }

  private async scan(
    scan: 'in-transaction' | 'after-commit',
    run: (tables: readonly CatalogTable[], values: readonly IdentifyingValue[], settings: Parameters<typeof scanTables>[3]) => Promise<{ scans: TableScan[]; findings: RawFinding[] }>,
  ): Promise<void> {
    if (!this.captured) return;
    const { values, subjects } = this.captured;
    if (!values.length) {
      this.failed = 'no identifying value to search for';
      return;
    }
    this.say(`residue: ${values.length} identifying ${values.length === 1 ? 'value' : 'values'} (${values.map((v) => `${v.name}: ${v.source}`).join(', ')}), ${this.tables.length} tables to scan ${scan === 'after-commit' ? 'after COMMIT' : 'before the ROLLBACK'}`);
    try {
      const result = await run(this.tables, values, {
        ...(this.options.maxSeconds !== undefined ? { budgetMs: this.options.maxSeconds * 1000 } : {}),
        keys: KEYS,
        explainOnly: false,
        progress: (line) => this.say(`  ${line}`),
      });
      this.result = { scan, reason: null, subjects, ...reportParts(this.policy, this.catalog, result, values, this.excluded, auditDigest(this.auditLog)) };
    } catch (e) {
      // A server message can quote a searched value: only its code is said.
      this.failed = `the residue scan failed (${(e as { code?: string }).code ?? (e as Error).name})`;
    }
  }

  private notRun(reason: string): RunResidue {
    return { scan: 'not-run', reason, subjects: this.captured?.subjects ?? null, values: [], excluded: [], tables: [], findings: [], notScanned: [], complete: false };
  }
}
