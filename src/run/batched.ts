/**
 * Batched cleanup (issue 11, item 3): a cleanup whose steps declare `batch:` runs step by step,
 * each step in transactions of its own: a batched step as many short ones, each deleting up to
 * N rows in keyset order of the table's primary key after the last key committed, until a batch
 * finds fewer than N; a step that is not batched as one. Each transaction is one execute() of a
 * derived plan (src/plan/batchPlan.ts), so every check of a single run holds per transaction:
 * before-expectations, preserve rules, the unplanned-change check, the guarded settings. The
 * batch's journal row commits with it (batchJournal.ts).
 *
 * When every step has run, one read-only transaction checks the end state: what each batched
 * step would still remove (rows that began to match behind the cursor: another pass from the
 * first key, MAX_PASSES in all) and every expectation, after-expectations included.
 */
import type postgres from 'postgres';
import { qualified } from '../core/names.js';
import { ExitCode } from '../core/errors.js';
import type { Plan, StepNode } from '../plan/nodes.js';
import type { TableKey } from './keys.js';
import { batchPlan, batchValues, finalPlan } from '../plan/batchPlan.js';
import { steps } from '../plan/query.js';
import type { RunValues } from '../values.js';
import { verdict } from '../commands/runOutcome.js';
import { execute, type ExecutionResult, type RunFailure, type RunSettings } from './execute.js';
import type { ReportRow } from './changes.js';
import type { BatchRecord, CleanupJournal } from './batchJournal.js';

/** Passes over a batched step's table in all: the first, and sweeps for rows that matched behind the cursor. */
export const MAX_PASSES = 3;
export const DEFAULT_BATCH_ROWS = 1000;
const MAX_BATCH_ROWS = 1_000_000;
const TRANSIENT_RETRIES = 3;

export interface BatchEvent {
  readonly kind: 'batch';
  readonly batch: number;
  readonly step: number;
  readonly table: string;
  readonly pass: number;
  /** Rows this batch could remove, and did. */
  readonly limit: number;
  readonly rows: number;
  /** The step's rows so far, batches of a resumed run included. */
  readonly stepRows: number;
  /** The batch transaction, BEGIN to COMMIT, as the runner measured it. */
  readonly ms: number;
}

export interface StepSummary {
  readonly step: number;
  readonly table: string;
  readonly batched: boolean;
  readonly outcome: 'done' | 'done-before' | 'skipped' | 'failed' | 'not-run';
  readonly rows: number;
  readonly batches: number;
  readonly passes: number;
}

export interface BatchedResult {
  readonly steps: readonly StepSummary[];
  /** Batches this run committed (a resumed run's earlier ones are in steps[].batches). */
  readonly batches: number;
  readonly maxBatchMs: number;
  /** The end state's check: the final read-only transaction. */
  readonly final?: ExecutionResult;
  readonly failure?: RunFailure & { readonly step?: number };
  readonly exitCode: number;
}

export interface BatchedRun {
  readonly sql: postgres.Sql;
  readonly plan: Plan;
  readonly values: RunValues;
  readonly settings: RunSettings;
  readonly journal: CleanupJournal;
  /** The primary key of each batched step's table (keys.ts), by step number. */
  readonly keys: ReadonlyMap<number, TableKey>;
  readonly pauseMs: number;
  readonly interrupt?: AbortSignal;
  readonly onBatch: (event: BatchEvent) => void;
  readonly say: (line: string) => void;
}

interface Progress {
  pass: number;
  after: string | null;
  endOfPass: boolean;
  rows: number;
  batches: number;
}

export async function runBatched(run: BatchedRun): Promise<BatchedResult> {
  const { plan, journal, values } = run;
  const progress = new Map<number, Progress>([...journal.steps].map(([step, s]) => [step, { pass: s.pass, after: s.lastKey, endOfPass: s.endOfPass, rows: s.rows, batches: s.batches }]));
  const outcomes = new Map<number, StepSummary['outcome']>();
  let batchNo = journal.lastBatch;
  let maxMs = 0;
  let paused = false;
  const result = (exitCode: number, failure?: BatchedResult['failure'], final?: ExecutionResult): BatchedResult => ({
    steps: steps(plan).map((s) => {
      const p = progress.get(s.step);
      return { step: s.step, table: qualified(s.table), batched: Boolean(s.batch), outcome: outcomes.get(s.step) ?? 'not-run', rows: p?.rows ?? 0, batches: p?.batches ?? 0, passes: p?.pass ?? 0 };
    }),
    batches: batchNo - journal.lastBatch,
    maxBatchMs: Math.round(maxMs),
    ...(final ? { final } : {}),
    ...(failure ? { failure } : {}),
    exitCode,
  });

  /** One transaction of one step; a transient failure is retried with backoff. The journal row commits with it. */
  const transaction = async (step: StepNode, derived: Plan, bound: RunValues, row: (removed: ReportRow | undefined) => Omit<BatchRecord, 'batch' | 'ms'>) => {
    for (let attempt = 0; ; attempt++) {
      if (run.pauseMs && paused) await sleep(run.pauseMs, run.interrupt);
      paused = true;
      const started = performance.now();
      let record: BatchRecord | undefined;
      const outcome = await execute(run.sql, derived, bound, 'apply', run.settings, () => {}, undefined, {
        ...(run.interrupt ? { interrupt: run.interrupt } : {}),
        // Every check held: the step's report row says what the batch removed and its last key.
        beforeCommit: ({ report }) => {
          const removed = report.find((r) => r.item.kind === 'step' && r.item.step === step.step);
          record = { batch: batchNo + 1, ms: Math.round(performance.now() - started), ...row(removed) };
        },
        inTransaction: (tx) => journal.committed(tx, record!),
      });
      const ms = performance.now() - started;
      if (outcome.committed) {
        batchNo++;
        maxMs = Math.max(maxMs, ms);
        return { record: record!, ms };
      }
      const v = verdict('apply', false, Boolean(outcome.commitUnknown), outcome.failure, run.interrupt);
      if (v.exitCode !== ExitCode.transient || attempt >= TRANSIENT_RETRIES || run.interrupt?.aborted) {
        return { failure: { ...(outcome.failure ?? { code: 'UNKNOWN', message: 'the connection was lost during COMMIT' }), step: step.step }, exitCode: v.exitCode };
      }
      run.say(`  step ${step.step}: transient failure (${outcome.failure?.message ?? 'unknown'}); retry ${attempt + 1} of ${TRANSIENT_RETRIES}`);
      await sleep(200 * 2 ** attempt, run.interrupt);
    }
  };

  /** A batched step's pass from where it stands: batch after batch until one finds fewer rows than it may take. */
  const batchedPass = async (step: StepNode) => {
    const spec = step.batch!;
    const { columns, plain } = run.keys.get(step.step)!;
    const p = progress.get(step.step)!;
    let limit = spec.rows ?? DEFAULT_BATCH_ROWS;
    for (;;) {
      if (run.interrupt?.aborted) return { failure: { code: 'INTERRUPTED', message: 'interrupted by a signal between batches', step: step.step }, exitCode: verdict('apply', false, false, { code: 'INTERRUPTED', message: '' }, run.interrupt).exitCode };
      const derived = batchPlan(plan, { step, keyset: { columns, after: p.after !== null, tid: plain }, ...(step.maxRows !== undefined ? { maxRowsLeft: step.maxRows - p.rows } : {}) });
      const done = await transaction(step, derived, batchValues(values, limit, p.after), (removed) => {
        const rows = removed?.rows ?? 0;
        return { step: step.step, pass: p.pass, rows, lastKey: removed?.detail ?? null, endOfPass: rows < limit };
      });
      if (!done.record) return done;
      const r = done.record;
      p.rows += r.rows;
      p.batches++;
      p.after = r.lastKey ?? p.after;
      p.endOfPass = r.endOfPass;
      run.onBatch({ kind: 'batch', batch: r.batch, step: step.step, table: qualified(step.table), pass: p.pass, limit, rows: r.rows, stepRows: p.rows, ms: Math.round(done.ms) });
      if (r.endOfPass) return undefined;
      if (spec.maxBatchMs !== undefined) limit = adapt(limit, done.ms, spec.maxBatchMs);
    }
  };

  for (const step of steps(plan)) {
    const flag = step.flag ? plan.flags.find((f) => f.name === step.flag) : undefined;
    if (flag && !(values.flags.get(flag.name) ?? flag.default)) {
      outcomes.set(step.step, 'skipped');
      continue;
    }
    const p = progress.get(step.step);
    if (p?.endOfPass) {
      outcomes.set(step.step, 'done-before');
      continue;
    }
    if (!step.batch) {
      const done = await transaction(step, batchPlan(plan, { step }), values, (removed) => ({ step: step.step, pass: 1, rows: removed?.rows ?? 0, lastKey: null, endOfPass: true }));
      if (!done.record) return (outcomes.set(step.step, 'failed'), result(done.exitCode, done.failure));
      progress.set(step.step, { pass: 1, after: null, endOfPass: true, rows: done.record.rows, batches: 1 });
      run.onBatch({ kind: 'batch', batch: done.record.batch, step: step.step, table: qualified(step.table), pass: 1, limit: 0, rows: done.record.rows, stepRows: done.record.rows, ms: Math.round(done.ms) });
      outcomes.set(step.step, 'done');
      continue;
    }
    if (!p && step.maxRows !== undefined) {
      // max_rows is for the whole run: counted first (read-only), so that too many rows stop the step before its first batch.
      const counted = await execute(run.sql, batchPlan(plan, { step }), batchValues(values, 0, null), 'plan', run.settings, () => {}, undefined, run.interrupt ? { interrupt: run.interrupt } : {});
      if (counted.failure) return (outcomes.set(step.step, 'failed'), result(verdict('plan', false, false, counted.failure, run.interrupt).exitCode, { ...counted.failure, step: step.step }));
    }
    if (!p) progress.set(step.step, { pass: 1, after: null, endOfPass: false, rows: 0, batches: 0 });
    const failed = await batchedPass(step);
    if (failed) return (outcomes.set(step.step, 'failed'), result(failed.exitCode, failed.failure));
    outcomes.set(step.step, 'done');
  }

  // The end state, read-only; a batched step that still matches rows gets another pass from its first key.
  const batched = steps(plan).filter((s) => s.batch && outcomes.get(s.step) !== 'skipped');
  for (;;) {
    const final = await execute(run.sql, finalPlan(plan), batchValues(values, 0, null), 'plan', run.settings, () => {}, undefined, run.interrupt ? { interrupt: run.interrupt } : {});
    const left = batched.filter((s) => (final.report.find((r) => r.item.kind === 'step' && r.item.step === s.step)?.rows ?? 0) > 0);
    const again = left.filter((s) => progress.get(s.step)!.pass < MAX_PASSES);
    if (left.length && again.length === left.length && !run.interrupt?.aborted) {
      for (const step of again) {
        const p = progress.get(step.step)!;
        Object.assign(p, { pass: p.pass + 1, after: null, endOfPass: false });
        run.say(`  step ${step.step} (${qualified(step.table)}): rows match again (written while the batches ran): pass ${p.pass} from its first key`);
        const failed = await batchedPass(step);
        if (failed) return (outcomes.set(step.step, 'failed'), result(failed.exitCode, failed.failure));
      }
      continue;
    }
    if (final.failure) return result(verdict('plan', false, false, final.failure, run.interrupt).exitCode, final.failure, final);
    if (left.length) {
      const which = left.map((s) => `step ${s.step} (${qualified(s.table)})`).join(', ');
      return result(ExitCode.checkFailed, { code: 'RUNNER', message: `${which} still match rows after ${MAX_PASSES} passes: something writes matching rows as fast as the batches remove them` }, final);
    }
    return result(ExitCode.ok, undefined, final);
  }
}

/** The next batch's rows: toward the time target, at most doubled or halved at once. */
export function adapt(rows: number, ms: number, targetMs: number): number {
  const factor = Math.min(2, Math.max(0.5, (targetMs * 0.8) / Math.max(ms, 1)));
  return Math.max(1, Math.min(MAX_BATCH_ROWS, Math.round(rows * factor)));
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (ms <= 0 || signal?.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}
