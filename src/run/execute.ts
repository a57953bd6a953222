import type postgres from 'postgres';
import type { BackupPlan, ExecutionResult, Progress, RunControl, RunFailure, RunMode, RunSettings, StepTiming } from './runTypes.js';
import type { Plan, PlanNode } from '../plan/nodes.js';
import { heading } from '../plan/heading.js';
import { applyStatement, dryRunStatement } from '../plan/print/index.js';
import { stepCondition } from '../plan/print/steps.js';
import { createsWorkingTable, isSetup, removesRows, reportItems, steps } from '../plan/query.js';
import { quoteIdent } from '../sql/quote.js';
import type { RunValues } from '../values.js';
import { referencedTables } from './rowLocks.js';
import { analyseChanges, STATS_SQL, toReport, toStats, type ReportRow, type StatsByTable, type TableChange } from './changes.js';
import { backUpDelete, backUpUpdate } from './backup.js';
import { qualified } from '../core/names.js';
import { changedSettings, GUARDED_SETTINGS_SQL, type SettingsSnapshot } from './settingsGuard.js';
import { Pipeline } from './pipeline.js';
import { optionalTables, stepWillRun, willRun } from './willRun.js';
import { failureKind, RefusedError, Rollback } from '../core/errors.js';

/**
 * Runs a plan's statements in order, pipelined (pipeline.ts), inside ONE transaction that this function opens. The
 * file's own BEGIN and COMMIT are never sent: a COMMIT inside sql.begin() would commit for real.
 * Parameter values are bound (an UPDATE of the parameter table with $1, $2, ...), never spliced.
 *
 *   plan      read-only dry run: the plan's dry-run statements, then ROLLBACK
 *   rehearse  the real statements, every check, then ROLLBACK (takes the same locks as apply)
 *   apply     the real statements, every check, then COMMIT only if everything held
 *   verify    a check policy's expectations (read-only), then ROLLBACK
 */
export type { BackupPlan, ExecutionResult, Progress, RunControl, RunFailure, RunMode, RunSettings, StepTiming } from './runTypes.js';

class Interrupted extends Error {}
class HookFailed extends Error {}
class RunnerCheckFailed extends Error {
  constructor(
    message: string,
    readonly tables: readonly TableChange[],
  ) {
    super(message);
  }
}

export async function execute(
  sql: postgres.Sql,
  plan: Plan,
  values: RunValues,
  mode: RunMode,
  settings: RunSettings,
  progress: Progress = () => {},
  backup?: BackupPlan,
  control: RunControl = {},
): Promise<ExecutionResult> {
  const dryRun = mode === 'plan' || mode === 'verify';
  const timings: StepTiming[] = [];
  const report: ReportRow[] = [];
  let tables: readonly TableChange[] = [];
  let current: string | undefined;
  let currentNode: number | undefined;
  let failure: RunFailure | undefined;
  let xid: string | undefined;
  let commitSent = false;
  let statementStarted = 0;
  const nodes = plan.nodes;
  const print = dryRun ? dryRunStatement : applyStatement;
  const items = reportItems(plan);
  const lastCreate = nodes.reduce((at, node, i) => (createsWorkingTable(node) ? i : at), -1);
  const firstChange = nodes.findIndex(removesRows);
  const setupEnd = nodes.findIndex((node, i) => i > 0 && !isSetup(node));
  let statsBefore: StatsByTable = new Map();
  let settingsAtStart: SettingsSnapshot | undefined;
  // The query on the wire, so that an interrupt can cancel it (a CancelRequest, no new login).
  let running: { cancel: () => unknown } | undefined;
  // The latest query of the backup's own (a cascade's rows, a COPY): it can wait on a lock too.
  let backupQuery: { cancel: () => unknown } | undefined;
  const cancelRunning = () => {
    if (!commitSent) void (running ?? backupQuery)?.cancel();
  };
  control.interrupt?.addEventListener('abort', cancelRunning, { once: true });

  try {
    await sql.begin(async (tx) => {
      // Statements are pipelined (pipeline.ts): sent without waiting, their answers taken in
      // order at the next drain. A drain comes only where the runner needs an answer: before a
      // backup copy, before the runner's checks at the end.
      const pipe = new Pipeline(tx, {
        awaiting: (at, node, query, since) => {
          current = at ?? current;
          currentNode = node;
          running = query;
          statementStarted = since;
        },
        stepDone: (step, ms) => timings.push({ step: step.step, table: step.table, ms }),
        waitingOnStep: (step) => {
          const timer = slowTimer(step, progress);
          return () => clearInterval(timer);
        },
      });
      const drain = async () => {
        try {
          await pipe.drain();
        } finally {
          running = undefined;
        }
      };
      let lastAt: string | undefined;
      // Whether each optional step's table exists, asked at the start (one answer, read only when the locks need it).
      const present = !dryRun && plan.kind === 'purge' ? optionalTables(tx, plan) : undefined;
      const referenced = !dryRun && plan.kind === 'purge' ? referencedTables(tx, plan) : undefined;
      referenced?.catch(() => {}); // awaited below; a run that fails before then must not leave it unhandled
      for (const [i, node] of nodes.entries()) {
        if (node.kind === 'begin' || node.kind === 'commit') continue;
        const text = print(node);
        if (i === setupEnd) {
          await pipe.sendBound(SETTINGS_SQL, [settings.lockTimeout, settings.statementTimeout], lastAt);
          pipe.send(GUARDED_SETTINGS_SQL, lastAt, { onRows: (rows) => (settingsAtStart = rows[0] as unknown as SettingsSnapshot) });
        }
        if (i === firstChange && !dryRun) {
          if (plan.kind === 'purge') {
            const exists = await present!;
            const lockable = await referenced!;
            for (const step of steps(plan).reverse()) {
              if (!stepWillRun(plan, step, values, exists) || !lockable.has(qualified(step.table))) continue;
              const condition = stepCondition(step);
              // Not a statement of the file: its line there is the step's, whose where it runs.
              pipe.send(`SELECT FROM ${qualified(step.table)}${condition ? ` WHERE ${condition}` : ''} FOR UPDATE`, `${heading(step).title} (locking its rows before the first delete, parents first)`, { node: nodes.indexOf(step) });
            }
          }
          pipe.send(STATS_SQL, lastAt, { onRows: (rows) => (statsBefore = toStats(rows)) });
        }
        if (i === firstChange && control.beforeChanges) {
          await drain();
          await control.beforeChanges(tx);
        }
        if (text === null) continue;
        const at = heading(node).title || lastAt;
        if (backup && !dryRun) {
          await drain();
          current = at;
          currentNode = undefined;
          await backUp(tracked(tx, (q) => (backupQuery = q)), backup, plan, node, values);
        }
        if (control.interrupt?.aborted) throw new Interrupted();
        if (await control.beforeNode?.(node, { pipe, at, index: i, print })) { lastAt = at; continue; } // --batch-size: its statements stand in for the node's
        // Each statement that writes a report row returns it (or is followed by the SELECT of
        // what its DO block wrote): the report is collected as the answers come in, so when a
        // statement fails (a guard, a check, a timeout) --json still says what matched and
        // every expectation's value, with no savepoint and nothing to read back.
        const step = node.kind === 'step' || node.kind === 'update' ? { step: node.step, table: qualified(node.table) } : undefined;
        pipe.send(text.sql, at, { step, node: i, ...(text.returnsReport ? { onRows: (rows) => report.push(...toReport(rows, items)) } : {}) });
        if (text.readBack) pipe.send(text.readBack, at, { node: i, onRows: (rows) => report.push(...toReport(rows, items)) });
        lastAt = at;
        if (node.kind === 'params') {
          const bind = bindStatement(plan, values);
          if (bind) await pipe.sendBound(bind.sql, bind.params, at);
        }
        if (node.kind === 'subject-guard' && control.subjectResolved) {
          await drain();
          await control.subjectResolved(tx);
        }
        if (dryRun && i === lastCreate) pipe.send('SET LOCAL transaction_read_only = on', at);
      }
      // The runner's checks: the statistics after, the guarded settings, and (apply) the
      // transaction's id, sent with the last statements.
      let statsAfter: StatsByTable = new Map();
      let settingsNow: SettingsSnapshot | undefined;
      if (!dryRun) pipe.send(STATS_SQL, lastAt, { onRows: (rows) => (statsAfter = toStats(rows)) });
      if (setupEnd >= 0) pipe.send(GUARDED_SETTINGS_SQL, lastAt, { onRows: (rows) => (settingsNow = rows[0] as unknown as SettingsSnapshot) });
      if (mode === 'apply') pipe.send('SELECT txid_current()::text AS xid', lastAt, { onRows: (rows) => (xid = String(rows[0]!['xid'])) });
      if (control.interrupt?.aborted) throw new Interrupted();
      await drain();
      current = lastAt;
      if (!dryRun) tables = checkChanges(plan, statsBefore, statsAfter, report);
      const changed = settingsAtStart && settingsNow && changedSettings(settingsAtStart, settingsNow);
      if (changed) throw new RunnerCheckFailed(changed, tables);
      if (mode !== 'apply') {
        await control.beforeRollback?.(tx);
        throw new Rollback();
      }
      if (backup) {
        // The backup must hold every row the run deleted, no more, no fewer: a row a trigger
        // deleted (the copy follows foreign keys only) would otherwise be lost for good.
        // (A TRUNCATE is not counted by pg_stat; a wipe copies whole tables.)
        if (plan.kind !== 'wipe') {
          const copied = backup.writer.rowsByTable();
          const gaps = [...new Set([...copied.keys(), ...tables.map((t) => t.table)])]
            .map((table) => ({ table, copied: copied.get(table) ?? 0, deleted: tables.find((t) => t.table === table)?.deleted ?? 0 }))
            .filter((g) => g.copied !== g.deleted);
          if (gaps.length) {
            throw new RunnerCheckFailed(`the backup does not hold exactly the rows deleted: ${gaps.map((g) => `${g.table}: ${g.deleted} deleted, ${g.copied} backed up`).join('; ')}`, tables);
          }
        }
        // The backup is on disk, complete and flushed before the rows it holds are gone for good.
        await backup.finish(tx);
      }
      if (control.interrupt?.aborted) throw new Interrupted();
      try {
        await control.beforeCommit?.({ xid: xid!, report, tables });
        await control.inTransaction?.(tx);
      } catch (e) {
        throw new HookFailed((e as Error).message, { cause: e });
      }
      // From here the driver sends COMMIT: a lost connection leaves the outcome unknown.
      commitSent = true;
      control.commitSent?.();
    });
    return { committed: true, report, timings, tables, ...(xid ? { xid } : {}) };
  } catch (error) {
    if (error instanceof Rollback) return { committed: false, report, timings, tables };
    const kind = error instanceof Interrupted ? undefined : failureKind(error as { code?: unknown }, timedOut(statementStarted, settings.statementTimeout));
    if (error instanceof Interrupted || (control.interrupt?.aborted && !commitSent && kind === 'cancelled')) {
      failure = { code: 'INTERRUPTED', message: 'interrupted by a signal: the running statement was cancelled and the transaction rolled back', ...(current ? { at: current } : {}) };
    } else if (kind === 'connection-lost') {
      const why = (error as Error).message;
      failure = commitSent
        ? { code: 'CONNECTION_LOST', kind, message: `the connection was lost after COMMIT was sent, before its answer (${why})`, at: 'COMMIT' }
        : { code: 'CONNECTION_LOST', kind, message: `the connection to the server was lost (${why})`, ...(current ? { at: current } : {}) };
      return { committed: false, report, timings, tables, failure, ...(commitSent ? { commitUnknown: true } : {}), ...(xid ? { xid } : {}) };
    } else if (error instanceof HookFailed) {
      failure = { code: 'AUDIT', message: `the audit log's attempt record could not be written (${error.message})`, at: 'just before COMMIT' };
    } else if (error instanceof RunnerCheckFailed) {
      tables = error.tables;
      failure = { code: 'RUNNER', message: error.message, at: "the runner's checks after the last statement" };
    } else if (error instanceof RefusedError) {
      failure = { code: 'GUARD', message: error.message, ...(current ? { at: current } : {}) };
    } else if (isServerError(error)) {
      failure = { code: error.code, ...(kind && kind !== 'other' ? { kind } : {}), message: error.message, ...(current ? { at: current } : {}), ...(currentNode !== undefined ? { node: currentNode } : {}), ...positionOf(error) };
    } else throw error;
    return { committed: false, report, timings, tables, failure };
  } finally {
    control.interrupt?.removeEventListener('abort', cancelRunning);
  }
}

/** `tx` whose queries (tagged or unsafe) are reported to `sent` as they are made, so that an interrupt can cancel them. */
function tracked(tx: postgres.TransactionSql, sent: (query: { cancel: () => unknown }) => void): postgres.TransactionSql {
  const note = <T>(result: T): T => {
    if (typeof (result as { cancel?: unknown })?.cancel === 'function') sent(result as { cancel: () => unknown });
    return result;
  };
  return new Proxy(tx, {
    apply: (target, self, args) => note(Reflect.apply(target, self, args)),
    get: (target, prop, receiver) =>
      prop === 'unsafe' ? (...args: Parameters<typeof target.unsafe>) => note(target.unsafe(...args)) : Reflect.get(target, prop, receiver),
  });
}

/** The server's position of an error and the statement it is in (postgres.js sets error.query). */
function positionOf(error: object): { position?: number; statement?: string } {
  const { position, query } = error as { position?: unknown; query?: unknown };
  const at = Number(position);
  return Number.isInteger(at) && at > 0 && typeof query === 'string' ? { position: at, statement: query } : {};
}

function isServerError(error: unknown): error is { code: string; message: string } {
  return typeof (error as { code?: unknown })?.code === 'string' && (error as { name?: string }).name === 'PostgresError';
}

/** Whether the statement started at `since` has run for (about) the whole --statement-timeout. */
function timedOut(since: number, statementTimeout: string): boolean {
  const limit = durationMs(statementTimeout);
  return since > 0 && limit !== undefined && performance.now() - since >= limit * 0.9;
}

/** A PostgreSQL duration setting in ms (a bare number is ms, as for statement_timeout). */
export function durationMs(text: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)\s*(us|ms|s|min|h|d)?$/.exec(text.trim());
  if (!m) return undefined;
  const unit = { us: 0.001, ms: 1, s: 1000, min: 60_000, h: 3_600_000, d: 86_400_000 }[(m[2] ?? 'ms') as 'ms'];
  return Number(m[1]) * unit;
}

/** The runner's timeouts replace the file's 10 s lock_timeout; bound ($1 lock, $2 statement), not spliced. */
const SETTINGS_SQL = `SELECT set_config('lock_timeout', $1, true), set_config('statement_timeout', $2, true)`;

/**
 * The parameter block was created with NULLs and defaults; the values go in as bind parameters.
 * Every value is bound as text and cast by the server ($1::text::boolean), so PostgreSQL parses
 * it exactly as it parses the literal `render` writes: the driver's own serializers for typed
 * parameters would change it first (a boolean 'true' became 'f', a timestamptz lost its
 * microseconds through a JavaScript Date).
 */
function bindStatement(plan: Plan, values: RunValues): { sql: string; params: (string | null)[] } | undefined {
  const columns: string[] = [];
  const bound: (string | null)[] = [];
  for (const p of plan.params) {
    bound.push(values.params.get(p.name) ?? null);
    columns.push(`${quoteIdent(p.name)} = $${bound.length}::text::${p.type}`);
  }
  for (const f of plan.flags) {
    bound.push(String(values.flags.get(f.name) ?? f.default));
    columns.push(`${quoteIdent(f.name)} = $${bound.length}::text::boolean`);
  }
  if (plan.forceMulti) {
    bound.push(String(values.forceMulti));
    columns.push(`force_multi = $${bound.length}::text::boolean`);
  }
  return columns.length ? { sql: `UPDATE pg_temp.purgekit_params SET ${columns.join(', ')}`, params: bound } : undefined;
}

/**
 * Copies out what the next statement removes, in the same transaction just before it runs: a
 * step's rows (only when the step will run) with what ON DELETE CASCADE takes along, or every
 * table a TRUNCATE empties.
 */
async function backUp(tx: postgres.TransactionSql, backup: BackupPlan, plan: Plan, node: PlanNode, values: RunValues): Promise<void> {
  if (node.kind === 'step') {
    if (!(await willRun(tx, plan, node, values))) return;
    await backUpDelete(tx, backup.writer, backup.catalog, qualified(node.table), stepCondition(node), `step ${node.step}`);
  }
  if (node.kind === 'update') {
    if (!(await willRun(tx, plan, node, values))) return;
    await backUpUpdate(tx, backup.writer, qualified(node.table), stepCondition(node), node.set.map((c) => c.column), `step ${node.step} (${node.mode})`);
  }
  if (node.kind === 'wipe') {
    // The reach guard has listed every table the TRUNCATE empties (partitioned parents have no rows).
    const reached = await tx<{ target: string }[]>`
      SELECT target FROM pg_temp.purgekit_report WHERE item = 'wipe' AND rows IS NOT NULL ORDER BY seq`;
    for (const { target } of reached) await backup.writer.copy(tx, target, '', 'wipe', true);
  }
}

/*
 * A purge locks the rows its steps will delete before the first delete, parents first (steps
 * run children first, so in reverse order; execute() sends one SELECT ... FOR UPDATE per step,
 * pipelined, each with its own heading so a lock timeout names its step). A concurrent insert
 * of a child row needs a key-share lock on its parent: it now waits for the purge and then
 * fails its foreign key, instead of getting in under a parent that a later step deletes, which
 * then failed the purge (23503, exit 4) on a busy database. The subject's rows are locked by its
 * lookup already; rows locked FOR UPDATE are not counted as changes by pg_stat_xact_user_tables.
 */

function checkChanges(plan: Plan, before: StatsByTable, after: StatsByTable, report: readonly ReportRow[]): readonly TableChange[] {
  const { tables, problems } = analyseChanges(plan, before, after, report);
  if (problems.length) throw new RunnerCheckFailed(problems.join('; '), tables);
  return tables;
}

function slowTimer(step: { readonly step: number; readonly table: string }, progress: Progress): NodeJS.Timeout {
  let seconds = 0;
  return setInterval(() => progress({ kind: 'slow', step: step.step, table: step.table, seconds: ++seconds }), 1000);
}
