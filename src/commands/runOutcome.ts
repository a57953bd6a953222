import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import os from 'node:os';
import { GuardCode, type Plan } from '../plan/nodes.js';
import { MANIFEST, type Manifest } from '../run/backup.js';
import { ExitCode, guardExitCode, guardOf, TRANSIENT_KINDS } from '../core/errors.js';
import type { Policy } from '../policy.js';
import type { AuditLog } from '../run/audit.js';
import { connect } from '../db/connect.js';
import type { ExecutionResult, RunFailure, RunMode } from '../run/execute.js';
import type { summarize, RunOutput } from '../run/output.js';
import type { RunValues } from '../values.js';

/** What a run's result means to the operator and the audit log: exit code, explanation, records. */

export function verdict(
  mode: RunMode,
  committed: boolean,
  unknown: boolean,
  failure: RunFailure | undefined,
  interrupt: AbortSignal | undefined,
): { exitCode: number; outcome: RunOutput['outcome'] } {
  const readOnly = mode === 'plan' || mode === 'verify';
  const rolledBack: RunOutput['outcome'] = readOnly ? 'read-only' : 'rolled-back';
  if (committed) return { exitCode: ExitCode.ok, outcome: 'committed' };
  if (unknown) return { exitCode: ExitCode.unexpected, outcome: 'unknown' };
  if (!failure) return { exitCode: ExitCode.ok, outcome: rolledBack };
  const code = failure.code;
  if (code === 'INTERRUPTED') return { exitCode: interrupt?.reason === 'SIGTERM' ? ExitCode.terminated : ExitCode.interrupted, outcome: rolledBack };
  // A guard of the runner's own that refused inside the transaction (guard.confirm: subject).
  if (code === 'GUARD') return { exitCode: ExitCode.refused, outcome: rolledBack };
  const guard = guardOf(code);
  if (guard === 'noSubject') return { exitCode: ExitCode.ok, outcome: 'nothing-matched' };
  if (guard) return { exitCode: guardExitCode(guard), outcome: rolledBack };
  if (failure.kind && TRANSIENT_KINDS.has(failure.kind)) return { exitCode: ExitCode.transient, outcome: rolledBack };
  if (/^PK\d{3}$/.test(code) || code === 'RUNNER' || failure.kind === 'integrity') return { exitCode: ExitCode.checkFailed, outcome: rolledBack };
  return { exitCode: ExitCode.unexpected, outcome: rolledBack };
}

/** The failure as an operator reads it: what happened, whether anything changed, what to do. */
export function explain(plan: Plan, failure: RunFailure, result: ExecutionResult, backupDir: string | undefined, auditLog: string, runId: string): string {
  const retry = 'rolled back, nothing was changed; safe to retry';
  switch (failure.kind) {
    case 'lock-timeout':
      return `lock timeout: another session holds a lock this run needs (${failure.message}); ${retry}, or raise --lock-timeout`;
    case 'statement-timeout':
      return `statement timeout: a statement ran longer than --statement-timeout (${failure.message}); ${retry}, or raise --statement-timeout`;
    case 'cancelled':
      return `cancelled by another session (pg_cancel_backend or an administrator), not a timeout (${failure.message}); ${retry}`;
    case 'deadlock':
      return `deadlock with another session (${failure.message}); ${retry}`;
    case 'serialization':
      return `serialization failure (${failure.message}); ${retry}`;
    case 'connection-lost':
      if (result.commitUnknown) {
        const how = result.xid ? `SELECT txid_status(${result.xid}); -- committed or aborted` : 'compare the tables with the plan';
        return `OUTCOME UNKNOWN: ${failure.message}. The server may or may not have committed. Find out with: ${how}` +
          `; the audit log ${auditLog} has the attempt record (runId ${runId}) with the counts` +
          (backupDir ? `; the backup in ${backupDir} is kept (restore it if the purge committed and should not have, delete it otherwise)` : '');
      }
      return `${failure.message}: the server rolled back the open transaction, nothing was changed; safe to retry`;
    default:
      break;
  }
  if (failure.code === GuardCode.multipleSubjects) {
    // Said in the runner's words: the file's message tells a psql user to set force_multi.
    const guard = plan.nodes.find((n) => n.kind === 'subject-guard');
    const matched = result.report.find((r) => r.item.kind === 'subject')?.rows ?? undefined;
    if (guard && matched !== undefined) return `${matched} ${guard.table.name} rows matched, more than ${guard.max} (pass --force-multi to purge them all)`;
    return `${failure.message} (pass --force-multi to purge them all)`;
  }
  return failure.message;
}

/** "12 rows deleted from 5 tables" for a COMMITTED message. */
export function committedCounts(output: RunOutput): string {
  const rows = output.tables.reduce((n, t) => n + t.deleted, 0);
  const tables = output.tables.filter((t) => t.deleted > 0).length;
  return `${rows} ${rows === 1 ? 'row' : 'rows'} deleted from ${tables} ${tables === 1 ? 'table' : 'tables'}: ${output.tables.filter((t) => t.deleted > 0).map((t) => `${t.table} ${t.deleted}`).join(', ')}`;
}

/** What the server says became of a transaction whose COMMIT lost its answer (one new connection, 10 s at most). */
export async function transactionStatus(connection: string | undefined, xid: string): Promise<string | undefined> {
  try {
    const probe = connect(connection, () => {});
    try {
      const [row] = await probe.sql<{ status: string | null }[]>`SELECT txid_status(${xid}::bigint) AS status`;
      return row?.status ?? undefined;
    } finally {
      await probe.sql.end({ timeout: 1 });
    }
  } catch {
    return undefined;
  }
}

/**
 * The values of personal params, as typed and as compared, replaced in server messages by a
 * marker: `invalid input syntax for type timestamp: "carol@example.com"` must not reach the
 * audit log, --json or stderr. Short values (under 4 characters) would also match unrelated
 * text, so they are replaced only where PostgreSQL quotes a value: "v", (v), 'v'.
 */
export function personalScrubber(policy: Policy, values: RunValues): (text: string) => string {
  const rules: { pattern: RegExp; marker: string }[] = [];
  const escape = (v: string) => v.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  for (const [name, value] of values.params) {
    const decl = policy.params.find((p) => p.name === name);
    if (!(decl?.personal ?? true)) continue;
    const forms = [...new Set([value, compared(value, decl?.normalize), value.trim()])].filter((v) => v.length > 0).sort((a, b) => b.length - a.length);
    for (const form of forms) {
      const marker = `[redacted :${name}]`;
      rules.push(form.length >= 4 ? { pattern: new RegExp(escape(form), 'gi'), marker } : { pattern: new RegExp(`(["'(])${escape(form)}(["')])`, 'g'), marker: `$1${marker}$2` });
    }
  }
  return (text) => rules.reduce((t, r) => t.replace(r.pattern, r.marker), text);
}

export function scrubSummary(summary: ReturnType<typeof summarize>, scrub: (text: string) => string): ReturnType<typeof summarize> {
  const s = (t: string | null) => (t === null ? null : scrub(t));
  return {
    ...summary,
    steps: summary.steps.map((x) => ({ ...x, detail: s(x.detail) })),
    wipe: summary.wipe.map((x) => ({ ...x, reason: s(x.reason) })),
    expectations: summary.expectations.map((x) => ({ ...x, detail: s(x.detail) })),
  };
}

/** The value as the policy compares it: Carol@Example.com and carol@example.com are one person. */
export function compared(value: string, normalize: string | undefined): string {
  return normalize === 'lower' ? value.toLowerCase() : normalize === 'upper' ? value.toUpperCase() : normalize === 'trim' ? value.trim() : value;
}

export async function summarizeBackup(dir: string): Promise<{ dir: string; files: number; rows: number }> {
  const manifest = JSON.parse(await readFile(join(dir, MANIFEST), 'utf8')) as Manifest;
  return { dir, files: manifest.files.length, rows: manifest.files.reduce((n, f) => n + f.rows, 0) };
}

export function elapsed(since: Date): number {
  return Date.now() - since.getTime();
}

export function auditRecord(
  log: AuditLog,
  event: 'attempt' | 'outcome',
  runId: string,
  policy: Policy,
  values: RunValues,
  output: Omit<RunOutput, 'durationMs'>,
  systemIdentifier: string | null,
  extra: object,
): object {
  const params = auditParams(log, policy, values.params);
  return {
    version: 1,
    // attempt: written just before COMMIT (outcome "committing"); outcome: once it is known.
    event,
    runId,
    policy: output.policy,
    planSha256: output.planSha256,
    database: { name: output.database.database, host: output.database.host, port: output.database.port, user: output.database.user, systemIdentifier },
    osUser: os.userInfo().username,
    startedAt: output.startedAt,
    ...(event === 'outcome' ? { finishedAt: new Date().toISOString() } : {}),
    params,
    flags: Object.fromEntries(values.flags),
    forceMulti: values.forceMulti,
    subject: output.subject,
    steps: output.steps.map(({ step, table, outcome, rows }) => ({ step, table, outcome, rows })),
    tables: output.tables,
    outcome: event === 'attempt' ? 'committing' : output.outcome,
    ...(event === 'outcome' ? { exitCode: output.exitCode, failedCheck: output.error } : {}),
    ...extra,
  };
}

/** A subject's params as the audit log (and the volume journal) write them: personal ones HMAC'd as compared, the others in clear. */
export function auditParams(log: Pick<AuditLog, 'pseudonymize'>, policy: Policy, given: ReadonlyMap<string, string>): Record<string, string> {
  const params: Record<string, string> = {};
  for (const [name, value] of given) {
    const decl = policy.params.find((p) => p.name === name);
    const personal = decl?.personal ?? true;
    const value_ = compared(value, decl?.normalize);
    params[name] = personal ? log.pseudonymize(value_) : value_;
  }
  return params;
}
