import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type postgres from 'postgres';
import type { AuditLog } from '../run/audit.js';
import { JobError, runAction, type JobValues } from './actions.js';
import { envNames, requiredEnvNames, type ActionSpec } from './spec.js';

/**
 * The outbox worker. It never holds a transaction open while a job runs (an HTTP call can take
 * 30 s; an open transaction holds back vacuum and its row locks hold other workers):
 *
 *   claim    one statement, committed at once: the first open job (pending, failed, or running
 *            under a lease that has expired) is picked with FOR UPDATE SKIP LOCKED and marked
 *            running, claimed_by this worker, lease_until now + the lease
 *   run      the action, tried `attempts` times with exponential backoff; while it runs the
 *            worker renews its lease every third of it (one short UPDATE each)
 *   finish   one short transaction: done (captured and params set to NULL) or failed with the
 *            last error, only if the claim is still this worker's; the audit line is on disk
 *            before it commits
 *
 * A second worker skips a claimed job: the row lock while it is being claimed, the lease after.
 * A worker that dies stops renewing: once its lease has expired another worker claims the job
 * again (every action is idempotent). The lease is renewed well before it ends, so a live worker
 * keeps its jobs; two workers run one job at the same time only if one is cut off from the
 * database for longer than the lease while its action still runs.
 */
export const LEASE_SECONDS = 60;

export interface WorkOptions {
  /** Only the jobs of this transaction (apply, right after its COMMIT). */
  readonly xid?: string;
  readonly attempts: number;
  readonly backoffMs: number;
  readonly env: NodeJS.ProcessEnv;
  readonly audit?: AuditLog;
  readonly runId?: string;
  readonly say?: (line: string) => void;
  /** Seconds a claim holds without renewal (default LEASE_SECONDS). */
  readonly leaseSeconds?: number;
}

export interface JobOutcome {
  readonly id: string;
  readonly policy: string;
  readonly action: number;
  readonly kind: string;
  readonly status: 'done' | 'failed';
  readonly attempts: number;
  /** The last error, secrets and personal values redacted; null when done. */
  readonly error: string | null;
}

interface JobRow {
  id: string;
  policy: string;
  action: number;
  kind: string;
  spec: ActionSpec;
  captured: Record<string, unknown> | null;
  params: Record<string, unknown> | null;
  attempts: number;
  /** The status it was claimed from: running means a lease that had expired. */
  was: string;
}

/** What a pass did, and the open jobs it left to other workers (running under a live lease). */
export interface WorkResult {
  readonly outcomes: JobOutcome[];
  readonly leased: number;
}

export async function workOutbox(sql: postgres.Sql, options: WorkOptions): Promise<WorkResult> {
  const worker = `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  const lease = options.leaseSeconds ?? LEASE_SECONDS;
  const outcomes: JobOutcome[] = [];
  let last = '0';
  for (;;) {
    const [job] = await sql<JobRow[]>`
      WITH c AS (
        SELECT id, status AS was FROM purgekit.outbox
        WHERE id > ${last}::bigint ${options.xid ? sql`AND xid = ${options.xid}::bigint` : sql``}
          AND (status IN ('pending', 'failed') OR (status = 'running' AND lease_until < now()))
        ORDER BY id LIMIT 1
        FOR UPDATE SKIP LOCKED)
      UPDATE purgekit.outbox AS o
      SET status = 'running', claimed_by = ${worker}, claimed_at = now(), lease_until = now() + make_interval(secs => ${lease}), updated_at = now()
      FROM c WHERE o.id = c.id
      RETURNING o.id::text AS id, o.policy, o.action, o.kind, o.spec, o.captured, o.params, o.attempts, c.was`;
    if (!job) break;
    last = job.id;
    if (job.was === 'running') options.say?.(`  side effect ${job.id}: its previous worker's lease expired (the worker stopped): running it again`);
    const renew = setInterval(() => {
      sql`UPDATE purgekit.outbox SET lease_until = now() + make_interval(secs => ${lease}) WHERE id = ${job.id}::bigint AND claimed_by = ${worker}`.catch(() => {});
    }, (lease * 1000) / 3);
    let result: { tries: number; error: string | null };
    try {
      result = await attempt(job, options);
    } finally {
      clearInterval(renew);
    }
    const done = result.error === null;
    const o: JobOutcome = { id: job.id, policy: job.policy, action: job.action, kind: job.kind, status: done ? 'done' : 'failed', attempts: job.attempts + result.tries, error: result.error };
    const kept = await sql.begin(async (tx) => {
      const [row] = await tx`
        UPDATE purgekit.outbox
        SET status = ${o.status}, attempts = attempts + ${result.tries}, last_error = ${result.error},
            updated_at = now(), done_at = ${done ? tx`now()` : tx`NULL`}, claimed_by = NULL, lease_until = NULL,
            captured = ${done ? tx`NULL` : tx`captured`}, params = ${done ? tx`NULL` : tx`params`}
        WHERE id = ${job.id}::bigint AND claimed_by = ${worker}
        RETURNING id`;
      // On disk before the job's row is committed as done: the log never misses an outcome.
      if (row) options.audit?.append(auditRecord(options.audit, o, job, options.runId));
      return Boolean(row);
    });
    if (!kept) {
      options.say?.(`  side effect ${o.id}: its lease expired while it ran and another worker claimed it: its outcome (${o.status}) is that worker's to record`);
      continue;
    }
    outcomes.push(o);
    options.say?.(`  side effect ${o.id} (${o.policy} #${o.action} ${o.kind}): ${o.status}${o.error ? `: ${o.error}` : ''}`);
  }
  const [open] = await sql<{ n: number }[]>`
    SELECT count(*)::int AS n FROM purgekit.outbox
    WHERE status = 'running' AND lease_until >= now() ${options.xid ? sql`AND xid = ${options.xid}::bigint` : sql``}`;
  const leased = open?.n ?? 0;
  if (leased) options.say?.(`  ${leased} side ${leased === 1 ? 'effect is' : 'effects are'} running under another worker's lease: left to it (purgekit outbox list)`);
  return { outcomes, leased };
}

async function attempt(job: JobRow, options: WorkOptions): Promise<{ tries: number; error: string | null }> {
  const values: JobValues = { captured: job.captured, params: job.params, env: options.env };
  let error = '';
  for (let tries = 1; ; tries++) {
    try {
      await runAction(job.spec, values);
      return { tries, error: null };
    } catch (e) {
      error = redactJob(e instanceof Error ? e.message : String(e), job, options.env);
      const permanent = e instanceof JobError && e.permanent;
      if (permanent || tries >= options.attempts) return { tries, error };
      await new Promise((r) => setTimeout(r, options.backoffMs * 2 ** (tries - 1)));
    }
  }
}

/** An error message without the job's environment values (secrets) and captured values and params (personal). */
export function redactJob(message: string, job: Pick<JobRow, 'spec' | 'captured' | 'params'>, env: NodeJS.ProcessEnv): string {
  const escape = (v: string) => v.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const rules: [string, string][] = [];
  for (const name of envNames(job.spec)) {
    const value = env[name];
    if (value) rules.push([value, `[\${${name}}]`]);
  }
  for (const [ns, from] of [['captured', job.captured], ['params', job.params]] as const) {
    for (const [name, value] of Object.entries(from ?? {})) {
      if (value === null || value === undefined) continue;
      const text = typeof value === 'string' ? value : JSON.stringify(value);
      if (text) rules.push([text, `[redacted ${ns === 'params' ? 'params' : 'subject'}.${name}]`], [encodeURIComponent(text), `[redacted ${ns === 'params' ? 'params' : 'subject'}.${name}]`]);
    }
  }
  rules.sort((a, b) => b[0].length - a[0].length);
  let out = message;
  for (const [value, marker] of rules) {
    // A short value (an id such as 7) only where it stands alone, not inside other numbers or words.
    const pattern = value.length >= 4 ? new RegExp(escape(value), 'g') : new RegExp(`(?<![A-Za-z0-9])${escape(value)}(?![A-Za-z0-9])`, 'g');
    out = out.replace(pattern, marker);
  }
  return out;
}

function auditRecord(log: AuditLog, o: JobOutcome, job: JobRow, runId: string | undefined): object {
  const pseudonymous = (from: Record<string, unknown> | null) =>
    from ? Object.fromEntries(Object.entries(from).map(([k, v]) => [k, v === null ? null : log.pseudonymize(typeof v === 'string' ? v : JSON.stringify(v))])) : null;
  return {
    version: 1,
    event: 'side-effect',
    ...(runId ? { runId } : {}),
    job: o.id,
    policy: o.policy,
    action: o.action,
    kind: o.kind,
    outcome: o.status,
    attempts: o.attempts,
    error: o.error,
    captured: pseudonymous(job.captured),
    params: pseudonymous(job.params),
    at: new Date().toISOString(),
  };
}

/** The environment variables a set of actions needs that are not set. */
export function missingEnv(specs: readonly ActionSpec[], env: NodeJS.ProcessEnv): string[] {
  return [...new Set(specs.flatMap(requiredEnvNames))].filter((name) => !env[name]);
}

