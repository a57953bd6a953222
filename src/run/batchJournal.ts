/**
 * The batched cleanup's journal (src/run/batched.ts): purgekit.cleanup_runs (one row per run)
 * and purgekit.cleanup_journal (one row per committed batch), in the target database, beside
 * the volume journal (src/volume/journal.ts). A batch's row is written in the batch's own
 * transaction, just before COMMIT (RunControl.inTransaction), so the journal cannot disagree
 * with what was committed: a run killed at any moment is resumed with --resume from the last
 * key each step committed, and its totals are the sum of the committed rows (no batch is
 * counted twice). A resumed run must be of the same policy and plan (generated file sha256).
 */
import { randomUUID } from 'node:crypto';
import type postgres from 'postgres';
import { RefusedError } from '../core/errors.js';

export const CLEANUP_JOURNAL_DDL = `
CREATE SCHEMA IF NOT EXISTS purgekit;
CREATE TABLE IF NOT EXISTS purgekit.cleanup_runs (
  run_id uuid PRIMARY KEY,
  policy text NOT NULL,
  plan_sha256 text NOT NULL,
  started_at timestamptz NOT NULL DEFAULT now(),
  finished_at timestamptz,
  exit_code integer
);
CREATE TABLE IF NOT EXISTS purgekit.cleanup_journal (
  run_id uuid NOT NULL REFERENCES purgekit.cleanup_runs,
  batch integer NOT NULL,
  step integer NOT NULL,
  pass integer NOT NULL,
  rows bigint NOT NULL,
  last_key jsonb,
  end_of_pass boolean NOT NULL,
  ms integer NOT NULL,
  recorded_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (run_id, batch)
)`;

/** Where a step stands: its pass, the last key committed, whether that pass reached the end of the table. */
export interface StepState {
  readonly pass: number;
  readonly lastKey: string | null;
  readonly endOfPass: boolean;
  readonly rows: number;
  readonly batches: number;
}

export interface BatchRecord {
  readonly batch: number;
  readonly step: number;
  readonly pass: number;
  readonly rows: number;
  readonly lastKey: string | null;
  readonly endOfPass: boolean;
  readonly ms: number;
}

export class CleanupJournal {
  private constructor(
    private readonly sql: postgres.Sql,
    readonly runId: string,
    /** step -> its state as the journal has it (a resumed run), empty for a new run. */
    readonly steps: ReadonlyMap<number, StepState>,
    readonly lastBatch: number,
  ) {}

  /**
   * A new run, or (resume) the newest unfinished run of this policy, which must be of this plan.
   * `unfinished` tells a new run that an older one did not finish.
   */
  static async open(sql: postgres.Sql, policy: string, planSha256: string, resume: boolean, unfinished: (runId: string, batches: number) => void): Promise<CleanupJournal> {
    await sql.unsafe(CLEANUP_JOURNAL_DDL).simple();
    const [last] = await sql<{ run_id: string; plan_sha256: string; batches: string }[]>`
      SELECT r.run_id::text, r.plan_sha256, (SELECT count(*) FROM purgekit.cleanup_journal j WHERE j.run_id = r.run_id) AS batches
      FROM purgekit.cleanup_runs r WHERE r.policy = ${policy} AND r.finished_at IS NULL ORDER BY r.started_at DESC LIMIT 1`;
    if (!resume) {
      if (last) unfinished(last.run_id, Number(last.batches));
      const runId = randomUUID();
      await sql`INSERT INTO purgekit.cleanup_runs (run_id, policy, plan_sha256) VALUES (${runId}, ${policy}, ${planSha256})`;
      return new CleanupJournal(sql, runId, new Map(), 0);
    }
    if (!last) throw new RefusedError(`--resume: nothing to resume: purgekit.cleanup_runs has no unfinished run of ${policy}. Run without --resume to start a new one`);
    if (last.plan_sha256 !== planSha256) {
      throw new RefusedError(`--resume: the unfinished run ${last.run_id} of ${policy} is of another plan (${last.plan_sha256.slice(0, 12)}; this one is ${planSha256.slice(0, 12)}): resume it with the generated file it ran, or run without --resume`);
    }
    const rows = await sql<{ batch: number; step: number; pass: number; rows: string; last_key: string | null; end_of_pass: boolean }[]>`
      SELECT batch, step, pass, rows, last_key::text, end_of_pass FROM purgekit.cleanup_journal WHERE run_id = ${last.run_id} ORDER BY batch`;
    const steps = new Map<number, StepState>();
    for (const r of rows) {
      const before = steps.get(r.step);
      steps.set(r.step, {
        pass: r.pass,
        // A batch that removed nothing keeps the key the pass had reached.
        lastKey: r.last_key ?? (before?.pass === r.pass ? before.lastKey : null),
        endOfPass: r.end_of_pass,
        rows: (before?.rows ?? 0) + Number(r.rows),
        batches: (before?.batches ?? 0) + 1,
      });
    }
    return new CleanupJournal(sql, last.run_id, steps, rows.at(-1)?.batch ?? 0);
  }

  /** In the batch's transaction, just before COMMIT. */
  async committed(tx: postgres.TransactionSql, b: BatchRecord): Promise<void> {
    await tx`
      INSERT INTO purgekit.cleanup_journal (run_id, batch, step, pass, rows, last_key, end_of_pass, ms)
      VALUES (${this.runId}, ${b.batch}, ${b.step}, ${b.pass}, ${b.rows}, ${b.lastKey}::jsonb, ${b.endOfPass}, ${b.ms})`;
  }

  /** The run ended (done, or failed for good): --resume no longer picks it. A run that was interrupted or failed transiently stays open. */
  async finished(exitCode: number): Promise<void> {
    await this.sql`UPDATE purgekit.cleanup_runs SET finished_at = now(), exit_code = ${exitCode} WHERE run_id = ${this.runId}`;
  }
}
