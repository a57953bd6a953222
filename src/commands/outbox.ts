import { connect, redact } from '../db/connect.js';
import { ExitCode } from '../core/errors.js';
import { AuditLog } from '../run/audit.js';
import { OUTBOX_DDL } from '../outbox/sql.js';
import { outboxExists } from '../outbox/runner.js';
import { workOutbox, type JobOutcome } from '../outbox/worker.js';
import { UsageError } from '../core/errors.js';
import { randomUUID } from 'node:crypto';

/** purgekit outbox init | run | list: the after_commit jobs in purgekit.outbox (docs/FORMATS.md). */
export interface OutboxOptions {
  readonly connection?: string;
  readonly say: (line: string) => void;
}

export async function outboxInit(options: OutboxOptions): Promise<void> {
  const conn = connect(options.connection, () => {});
  try {
    await conn.sql.unsafe(OUTBOX_DDL);
  } finally {
    await conn.sql.end({ timeout: 5 });
  }
}

export async function outboxRun(options: OutboxOptions & { auditLog: string; attempts: number; backoffMs: number; leaseSeconds?: number }): Promise<{ jobs: JobOutcome[]; exitCode: number }> {
  const audit = AuditLog.open(options.auditLog);
  const conn = connect(options.connection, () => {});
  try {
    if (!(await outboxExists(conn.sql))) throw new UsageError('this database has no purgekit.outbox (purgekit outbox init creates it)');
    const { outcomes: jobs, leased } = await workOutbox(conn.sql, {
      attempts: options.attempts,
      backoffMs: options.backoffMs,
      env: process.env,
      audit,
      runId: randomUUID(),
      say: (l) => options.say(redact(l, conn.secrets)),
      ...(options.leaseSeconds !== undefined ? { leaseSeconds: options.leaseSeconds } : {}),
    });
    const failed = jobs.filter((j) => j.status !== 'done').length;
    // A job running under another worker's live lease is that worker's: not a failure of this run.
    options.say(`outbox run: ${jobs.length - failed} done, ${failed} failed${leased ? `, ${leased} running under another worker's lease` : ''}`);
    return { jobs, exitCode: failed ? ExitCode.committedPending : ExitCode.ok };
  } finally {
    audit.close();
    await conn.sql.end({ timeout: 5 });
  }
}

export interface OutboxRow {
  readonly id: string;
  readonly policy: string;
  readonly action: number;
  readonly kind: string;
  readonly status: string;
  readonly attempts: number;
  readonly lastError: string | null;
  readonly createdAt: string;
  readonly doneAt: string | null;
  /** status running: until when its worker's lease holds (it renews it while the job runs). */
  readonly leaseUntil: string | null;
}

/** Every job, newest last; no captured values (they are personal), only what is and was done. */
export async function outboxList(options: OutboxOptions & { all: boolean }): Promise<OutboxRow[]> {
  const conn = connect(options.connection, () => {});
  try {
    if (!(await outboxExists(conn.sql))) throw new UsageError('this database has no purgekit.outbox (purgekit outbox init creates it)');
    const rows = await conn.sql<OutboxRow[]>`
      SELECT id::text AS id, policy, action, kind, status, attempts, last_error AS "lastError",
             to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS "createdAt",
             to_char(done_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS "doneAt",
             to_char(lease_until AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS "leaseUntil"
      FROM purgekit.outbox ${options.all ? conn.sql`` : conn.sql`WHERE status <> 'done'`}
      ORDER BY outbox.id`;
    return rows.map((r) => ({ ...r }));
  } finally {
    await conn.sql.end({ timeout: 5 });
  }
}
