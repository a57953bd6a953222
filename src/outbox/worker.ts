import type postgres from 'postgres';
import type { AuditLog } from '../run/audit.js';
import { JobError, runAction, type JobValues } from './actions.js';
import { envNames, type ActionSpec } from './spec.js';

/**
 * The outbox worker: claims one open job at a time (status pending or failed) with FOR UPDATE
 * SKIP LOCKED and holds that row lock while it runs the job and records the result, all in one
 * short transaction of its own. A second worker skips a claimed job; a worker that dies releases
 * its claim (the job stays open and runs again: jobs are idempotent). A job is tried `attempts`
 * times with exponential backoff, then left failed with its last error for the next run.
 */
export interface WorkOptions {
  /** Only the jobs of this transaction (apply, right after its COMMIT). */
  readonly xid?: string;
  readonly attempts: number;
  readonly backoffMs: number;
  readonly env: NodeJS.ProcessEnv;
  readonly audit?: AuditLog;
  readonly runId?: string;
  readonly say?: (line: string) => void;
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
}

export async function workOutbox(sql: postgres.Sql, options: WorkOptions): Promise<JobOutcome[]> {
  const outcomes: JobOutcome[] = [];
  let last = '0';
  for (;;) {
    const outcome = await sql.begin(async (tx) => {
      const [job] = await tx<JobRow[]>`
        SELECT id::text AS id, policy, action, kind, spec, captured, params, attempts
        FROM purgekit.outbox
        WHERE status <> 'done' AND id > ${last}::bigint ${options.xid ? tx`AND xid = ${options.xid}::bigint` : tx``}
        ORDER BY outbox.id -- the column, not the text alias
        LIMIT 1
        FOR UPDATE SKIP LOCKED`;
      if (!job) return undefined;
      const result = await attempt(job, options);
      const done = result.error === null;
      await tx`
        UPDATE purgekit.outbox
        SET status = ${done ? 'done' : 'failed'}, attempts = attempts + ${result.tries}, last_error = ${result.error},
            updated_at = now(), done_at = ${done ? tx`now()` : tx`NULL`},
            captured = ${done ? tx`NULL` : tx`captured`}, params = ${done ? tx`NULL` : tx`params`}
        WHERE id = ${job.id}::bigint`;
      const o: JobOutcome = { id: job.id, policy: job.policy, action: job.action, kind: job.kind, status: done ? 'done' : 'failed', attempts: job.attempts + result.tries, error: result.error };
      // On disk before the job's row is committed as done: the log never misses an outcome.
      options.audit?.append(auditRecord(options.audit, o, job, options.runId));
      return o;
    });
    if (!outcome) break;
    last = outcome.id;
    outcomes.push(outcome);
    options.say?.(`  side effect ${outcome.id} (${outcome.policy} #${outcome.action} ${outcome.kind}): ${outcome.status}${outcome.error ? `: ${outcome.error}` : ''}`);
  }
  return outcomes;
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
  return [...new Set(specs.flatMap(envNames))].filter((name) => !env[name]);
}

