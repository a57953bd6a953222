/**
 * plan|apply <purge policy> --subjects-from <file|->: the subjects of a file run one after
 * another through the single-subject runner (runCommand), so that every check of a single run
 * (lookup, multi-match, preserve, unplanned changes, expectations, audit) holds per subject.
 *
 * Today a batch is one subject: one transaction per subject. A subject not found is reported
 * and is not an error; a subject that fails a guard or check is reported with its line and the
 * run goes on (or stops with --stop-on-error); a transient failure (exit 7) is retried with
 * backoff a bounded number of times. The run exits with the worst code of its subjects.
 */
import { kebab } from '../core/names.js';
import { ExitCode, UsageError } from '../core/errors.js';
import { reviewedPlan, runCommand, type RunOptions } from '../commands/run.js';
import { readSubjects, subjectsPath, validateSubjects } from './subjects.js';
import { fileSha256, Journal } from './journal.js';
import { checksumOf } from '../render/render.js';
import { AuditLog } from '../run/audit.js';
import { connect, connected } from '../db/connect.js';
import { volumeProgress } from './progress.js';

export interface VolumeOptions extends RunOptions {
  readonly subjectsFrom: string;
  readonly stopOnError: boolean;
  /** apply: skip the lines that the journal says a previous run of this policy + plan + file finished. */
  readonly resume: boolean;
  /** Tries after the first for a transient failure (exit 7). */
  readonly retries: number;
  /** Backoff before the first retry, doubled each time. */
  readonly backoffMs: number;
  /** One JSON line per subject and a summary on stdout. */
  readonly jsonLine?: (doc: object) => void;
  /** stderr is a terminal: a progress bar instead of one line per subject. */
  readonly tty?: boolean;
}

export type SubjectOutcome = 'committed' | 'not-found' | 'read-only' | 'failed' | 'skipped' | 'done-before';

export interface SubjectResult {
  readonly line: number;
  readonly outcome: SubjectOutcome;
  readonly exitCode: number;
  readonly tries: number;
  readonly deleted: number;
  readonly error: string | null;
}

export interface VolumeSummary {
  readonly kind: 'summary';
  readonly policy: string;
  readonly command: string;
  readonly subjects: number;
  readonly committed: number;
  readonly notFound: number;
  readonly readOnly: number;
  readonly failed: number;
  readonly skipped: number;
  /** --resume: lines a previous run committed (or found nothing for), not run again. */
  readonly doneBefore: number;
  /** apply: purgekit.journal's run id (sha256 of policy, plan sha256, subjects file sha256). */
  readonly runId: string | null;
  readonly deleted: number;
  /** exit code -> how many subjects ended with it */
  readonly exitCodes: Record<string, number>;
  readonly exitCode: number;
  readonly durationMs: number;
}

export async function runSubjects(command: 'plan' | 'apply', options: VolumeOptions): Promise<{ summary: VolumeSummary; exitCode: number }> {
  const started = Date.now();
  // Resolved, compiled and checked against generated/ once (a stale file is refused before the
  // first subject), then handed to every subject's run.
  const reviewed = await reviewedPlan(options);
  const { policy } = reviewed;
  if (policy.kind !== 'purge' || !policy.subject) throw new UsageError(`--subjects-from goes with a purge policy: ${policy.name} is a ${policy.kind} policy`);
  for (const p of policy.params) {
    if (options.values[kebab(p.name)] !== undefined || options.values[p.name] !== undefined) {
      throw new UsageError(`--${kebab(p.name)}: the subjects come from ${options.subjectsFrom}; give the params there, not on the command line`);
    }
  }
  const { path, label } = await subjectsPath(options.subjectsFrom);
  // Every line is checked before the first subject runs: a bad line deletes nothing.
  const total = await validateSubjects(path, label, policy);
  options.stderr(`purgekit ${command} ${policy.name}: ${total} ${total === 1 ? 'subject' : 'subjects'} from ${label}`);
  if (options.resume && command !== 'apply') throw new UsageError('--resume goes with apply --subjects-from');
  // apply: the journal (purgekit.journal, in the database) and the audit log's key for the subjects' HMACs.
  const planSha256 = checksumOf(reviewed.fileText).actual;
  const journalConn = command === 'apply' ? connect(options.connection, () => {}) : undefined;
  const auditLog = command === 'apply' ? AuditLog.open(options.auditLog) : undefined;
  try {
    const subjectsSha256 = await fileSha256(path);
    // The journal's table is the first round trip: an unreachable server is exit 5, named.
    const journal = journalConn && (await connected(journalConn, (sql) => Journal.open(sql, { policy: policy.name, planSha256, subjectsSha256 }, options.resume)));
    if (journal) options.stderr(`journal: purgekit.journal run ${journal.runId.slice(0, 12)}${options.resume ? `, resuming: ${journal.done.size} lines done before` : ''}`);
    return await loop(journal, auditLog);
  } finally {
    auditLog?.close();
    await journalConn?.sql.end({ timeout: 5 });
  }

  async function loop(journal: Journal | undefined, auditLog: AuditLog | undefined) {
    const results: SubjectResult[] = [];
    const progress = volumeProgress(total, Boolean(options.tty), options.stderr);
    let stop = false;
    for await (const subject of readSubjects(path, label, policy)) {
      if (journal?.done.has(subject.line)) {
        results.push({ line: subject.line, outcome: 'done-before', exitCode: 0, tries: 0, deleted: 0, error: null });
        continue;
      }
      if (stop) {
        results.push({ line: subject.line, outcome: 'skipped', exitCode: 0, tries: 0, deleted: 0, error: null });
        continue;
      }
      const digest = auditLog?.pseudonymize(JSON.stringify([...subject.values].sort())) ?? '';
      const values = { ...options.values, ...Object.fromEntries([...subject.values].map(([k, v]) => [kebab(k), v])) };
      let tries = 0;
      let outcome;
      for (;;) {
        tries++;
        const lines: string[] = [];
        outcome = await runCommand(command, {
          ...options,
          reviewed,
          values,
          stderr: (l) => lines.push(l),
          ...(journal ? { inTransaction: (tx: Parameters<Journal['committed']>[0]) => journal.committed(tx, subject.line, digest) } : {}),
        });
        if (outcome.exitCode !== ExitCode.transient || tries > options.retries || options.interrupt?.aborted) break;
        const wait = options.backoffMs * 2 ** (tries - 1);
        progress.note(`${label}:${subject.line}: transient failure (${outcome.output.error?.message ?? 'exit 7'}); retry ${tries} of ${options.retries} in ${wait} ms`);
        await new Promise((r) => setTimeout(r, wait));
      }
      const { output, exitCode } = outcome;
      const deleted = output.tables.reduce((n, t) => n + t.deleted, 0);
      const result: SubjectResult = {
        line: subject.line,
        outcome: exitCode !== ExitCode.ok ? 'failed' : output.outcome === 'nothing-matched' ? 'not-found' : output.outcome === 'committed' ? 'committed' : 'read-only',
        exitCode,
        tries,
        deleted,
        error: exitCode !== ExitCode.ok ? (output.error?.message ?? `exit ${exitCode}`) : null,
      };
      results.push(result);
      if (journal && (result.outcome === 'not-found' || result.outcome === 'failed')) {
        await journal.recorded(subject.line, digest, result.outcome, exitCode).catch((e: Error) => progress.note(`warning: ${label}:${subject.line}: not recorded in purgekit.journal (${e.message}); --resume will run it again`));
      }
      options.jsonLine?.({ kind: 'subject', ...result });
      progress.subject(`${label}:${subject.line}: ${describe(result, output.subject?.matched)}`, result.outcome === 'failed');
      if (exitCode === ExitCode.interrupted || exitCode === ExitCode.terminated) stop = true;
      // The policy's guard refused the database (or the confirmation): it refuses every subject alike.
      if (output.outcome === 'refused') {
        stop = true;
        progress.note(`the run stops: the guard refuses every subject alike (${output.error?.message ?? 'refused'})`);
      }
      if (result.outcome === 'failed' && options.stopOnError) {
        stop = true;
        progress.note(`--stop-on-error: stopping after ${label}:${subject.line}; the subjects before it are done, those after it are not run`);
      }
    }
    progress.stop();
    const count = (o: SubjectOutcome) => results.filter((r) => r.outcome === o).length;
    const exitCodes: Record<string, number> = {};
    for (const r of results) if (r.outcome !== 'skipped') exitCodes[r.exitCode] = (exitCodes[r.exitCode] ?? 0) + 1;
    const interrupted = results.find((r) => r.exitCode === ExitCode.interrupted || r.exitCode === ExitCode.terminated);
    const worst = interrupted ? interrupted.exitCode : Math.max(0, ...results.filter((r) => r.outcome === 'failed').map((r) => r.exitCode));
    const summary: VolumeSummary = {
      kind: 'summary',
      policy: policy.name,
      command,
      subjects: results.length,
      committed: count('committed'),
      notFound: count('not-found'),
      readOnly: count('read-only'),
      failed: count('failed'),
      skipped: count('skipped'),
      doneBefore: count('done-before'),
      runId: journal?.runId ?? null,
      deleted: results.reduce((n, r) => n + r.deleted, 0),
      exitCodes,
      exitCode: worst,
      durationMs: Date.now() - started,
    };
    options.jsonLine?.(summary);
    // The audit log: each subject has its own attempt and outcome records (a single run's); the run's summary closes them.
    try {
      auditLog?.append({ version: 1, event: 'volume-summary', journalRunId: summary.runId, planSha256, subjectsFile: label, finishedAt: new Date().toISOString(), ...summary });
    } catch (e) {
      options.stderr(`warning: the audit log's summary record could not be written to ${options.auditLog}: ${(e as Error).message}`);
    }
    options.stderr(
      `${summary.subjects} subjects: ${summary.committed} committed, ${summary.notFound} not found, ${summary.readOnly} read-only, ${summary.failed} failed, ${summary.skipped} not run${summary.doneBefore ? `, ${summary.doneBefore} done before (--resume)` : ''}; ${summary.deleted} rows deleted` +
        (summary.failed ? `; exit codes ${Object.entries(exitCodes).map(([c, n]) => `${c}: ${n}`).join(', ')}` : ''),
    );
    return { summary, exitCode: worst };
  }
}

function describe(r: SubjectResult, matched: number | undefined): string {
  switch (r.outcome) {
    case 'committed':
      return `committed, ${r.deleted} rows deleted${r.tries > 1 ? ` (after ${r.tries} tries)` : ''}`;
    case 'not-found':
      return 'not found: nothing to purge';
    case 'read-only':
      return `would purge (${matched ?? '?'} matched), read-only`;
    default:
      return `FAILED (exit ${r.exitCode}${r.tries > 1 ? `, ${r.tries} tries` : ''}): ${r.error}`;
  }
}
