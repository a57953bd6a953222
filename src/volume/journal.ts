/**
 * The volume journal: purgekit.journal in the target database. The lines of a committed batch
 * (--batch-size) are written in the batch's own transaction, with its number, just before COMMIT (RunControl.inTransaction), so
 * the journal cannot disagree with what was committed: a run killed at any moment (SIGKILL, a
 * lost connection, a server restart) is resumed with --resume, which skips exactly the
 * committed (and not-found) lines. Failed subjects are recorded after their rollback, on their
 * own. A subject is stored as its params as the audit log writes them (runOutcome.ts auditParams:
 * personal values HMAC'd under the audit log's key after the policy's normalize), never in clear.
 *
 * The run id is sha256(policy, plan sha256, subjects file sha256): a journal of another plan or
 * another subjects file has another id, and --resume refuses it.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import type postgres from 'postgres';
import { RefusedError } from '../core/errors.js';

export type JournalOutcome = 'committed' | 'not-found' | 'failed';

export const JOURNAL_DDL = `
CREATE SCHEMA IF NOT EXISTS purgekit;
CREATE TABLE IF NOT EXISTS purgekit.journal (
  run_id text NOT NULL,
  policy text NOT NULL,
  plan_sha256 text NOT NULL,
  subjects_sha256 text NOT NULL,
  line integer NOT NULL,
  subject text NOT NULL,
  outcome text NOT NULL CHECK (outcome IN ('committed', 'not-found', 'failed')),
  exit_code integer NOT NULL,
  recorded_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (run_id, line)
);
ALTER TABLE purgekit.journal ADD COLUMN IF NOT EXISTS batch integer`;

export interface JournalKey {
  readonly policy: string;
  readonly planSha256: string;
  readonly subjectsSha256: string;
}

export function runIdOf(key: JournalKey): string {
  return createHash('sha256').update(`${key.policy}\n${key.planSha256}\n${key.subjectsSha256}`).digest('hex');
}

export async function fileSha256(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

export class Journal {
  readonly runId: string;
  private constructor(
    private readonly sql: postgres.Sql,
    readonly key: JournalKey,
    /** line -> outcome of the lines a previous run finished (committed or not found). */
    readonly done: ReadonlyMap<number, JournalOutcome>,
  ) {
    this.runId = runIdOf(key);
  }

  /** Creates the journal table if need be; with resume, reads what this run id finished before. */
  static async open(sql: postgres.Sql, key: JournalKey, resume: boolean): Promise<Journal> {
    await sql.unsafe(JOURNAL_DDL).simple();
    const runId = runIdOf(key);
    const done = new Map<number, JournalOutcome>();
    if (resume) {
      const rows = await sql<{ line: number; outcome: JournalOutcome }[]>`SELECT line, outcome FROM purgekit.journal WHERE run_id = ${runId}`;
      if (rows.length === 0) {
        const others = await sql<{ plan_sha256: string; subjects_sha256: string; n: string }[]>`
          SELECT plan_sha256, subjects_sha256, count(*) AS n FROM purgekit.journal WHERE policy = ${key.policy} GROUP BY 1, 2 ORDER BY 1, 2`;
        const why = others.length
          ? `the journal holds ${key.policy} runs of another plan or subjects file only (${others
              .map((o) => `plan ${o.plan_sha256.slice(0, 12)}, subjects file ${o.subjects_sha256.slice(0, 12)}: ${o.n} lines`)
              .join('; ')}); this run is plan ${key.planSha256.slice(0, 12)}, subjects file ${key.subjectsSha256.slice(0, 12)}`
          : `purgekit.journal has no run of ${key.policy}`;
        throw new RefusedError(`--resume: nothing to resume: ${why}. Run without --resume to start this file from the top`);
      }
      for (const r of rows) if (r.outcome !== 'failed') done.set(r.line, r.outcome);
    }
    return new Journal(sql, key, done);
  }

  /**
   * In the batch's transaction, just before COMMIT: every line it held, committed or (found
   * nothing in it) not found, with the batch's number. One statement whatever the batch's size.
   */
  async committed(tx: postgres.TransactionSql, batch: number, lines: readonly { line: number; subject: string; outcome: 'committed' | 'not-found' }[]): Promise<void> {
    await this.write(tx, lines.map((l) => ({ ...l, exitCode: 0 })), batch);
  }

  /** After a batch's transaction ended without a commit: its lines not found, or failed. */
  async recorded(lines: readonly JournalLine[]): Promise<void> {
    await this.write(this.sql, lines, null);
  }

  private async write(sql: postgres.Sql | postgres.TransactionSql, lines: readonly JournalLine[], batch: number | null): Promise<void> {
    const k = this.key;
    await sql`
      INSERT INTO purgekit.journal (run_id, policy, plan_sha256, subjects_sha256, line, subject, outcome, exit_code, batch)
      SELECT ${this.runId}, ${k.policy}, ${k.planSha256}, ${k.subjectsSha256}, l.line, l.subject, l.outcome, l.exit_code, ${batch}::int
      FROM unnest(${lines.map((l) => l.line)}::int[], ${lines.map((l) => l.subject)}::text[], ${lines.map((l) => l.outcome)}::text[], ${lines.map((l) => l.exitCode)}::int[]) AS l (line, subject, outcome, exit_code)
      ON CONFLICT (run_id, line) DO UPDATE SET outcome = excluded.outcome, exit_code = excluded.exit_code, subject = excluded.subject, batch = excluded.batch, recorded_at = now()`;
  }
}

export interface JournalLine {
  readonly line: number;
  readonly subject: string;
  readonly outcome: JournalOutcome;
  readonly exitCode: number;
}
