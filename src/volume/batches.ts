/**
 * plan|apply <purge policy> --subjects-from <file|->: the subjects of a file in batches of
 * --batch-size, ONE transaction per batch (runBatch.ts), every check of a single run applied to
 * each batch (lookups per subject, several matches, preserve, unplanned changes, expectations,
 * audit). A subject that is not found is reported and is not an error; a subject that fails a
 * guard is reported with its line and its batch runs again without it; the run goes on (or stops
 * with --stop-on-error); a transient failure (exit 7) is retried with backoff a bounded number
 * of times. The run exits with the worst code of its subjects.
 */
import { randomUUID } from 'node:crypto';
import { kebab } from '../core/names.js';
import { readdir } from 'node:fs/promises';
import { BackupError, ExitCode, UsageError } from '../core/errors.js';
import { reviewedPlan, type RunOptions } from '../commands/run.js';
import { readSubjects, subjectsPath, validateSubjects, type Subject } from './subjects.js';
import { fileSha256, Journal } from './journal.js';
import { checksumOf } from '../render/render.js';
import { AuditLog } from '../run/audit.js';
import { connect, connected } from '../db/connect.js';
import { volumeProgress } from './progress.js';
import { settleBatch, type BatchContext, type BatchResult, type SubjectOutcome, type SubjectResult } from './runBatch.js';
import { unbatchable } from './batchable.js';
import { collectIfGrown } from './memory.js';

export type { SubjectOutcome, SubjectResult } from './runBatch.js';

/** --batch-size's default: bench/volume.ts (1,000 subjects) is within a few percent from 50 up; smaller batches lose more to the runner's fixed cost per transaction, larger ones hold their locks longer. */
export const DEFAULT_BATCH_SIZE = 50;

export interface VolumeOptions extends RunOptions {
  readonly subjectsFrom: string;
  readonly stopOnError: boolean;
  /** Subjects per transaction (default DEFAULT_BATCH_SIZE; ledger replay takes the default). */
  readonly batchSize?: number;
  /** apply: skip the lines that the journal says a previous run of this policy + plan + file finished. */
  readonly resume: boolean;
  /** Tries after the first for a transient failure (exit 7). */
  readonly retries: number;
  /** Backoff before the first retry, doubled each time. */
  readonly backoffMs: number;
  /** One JSON line per subject and per batch, and a summary, on stdout. */
  readonly jsonLine?: (doc: object) => void;
  /** stderr is a terminal: a progress bar instead of one line per batch. */
  readonly tty?: boolean;
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
  /** This run's id in the audit log: every batch's records carry it, with the batch's number. */
  readonly auditRunId: string;
  readonly batchSize: number;
  /** Transactions run (a batch run again without a refused subject, or one per subject, counts again). */
  readonly batches: number;
  readonly deleted: number;
  /** exit code -> how many subjects ended with it */
  readonly exitCodes: Record<string, number>;
  readonly exitCode: number;
  readonly durationMs: number;
}

export async function runSubjects(command: 'plan' | 'apply', options: VolumeOptions): Promise<{ summary: VolumeSummary; exitCode: number }> {
  const started = Date.now();
  // Resolved, compiled and checked against generated/ once (a stale file is refused before the
  // first subject), then handed to every batch's run.
  const reviewed = await reviewedPlan(options);
  const { policy } = reviewed;
  if (policy.kind !== 'purge' || !policy.subject) throw new UsageError(`--subjects-from goes with a purge policy: ${policy.name} is a ${policy.kind} policy`);
  for (const p of policy.params) {
    if (options.values[kebab(p.name)] !== undefined || options.values[p.name] !== undefined) {
      throw new UsageError(`--${kebab(p.name)}: the subjects come from ${options.subjectsFrom}; give the params there, not on the command line`);
    }
  }
  const asked = options.batchSize ?? DEFAULT_BATCH_SIZE;
  if (!Number.isInteger(asked) || asked < 1 || asked > 10_000) throw new UsageError(`--batch-size ${asked}: expected a whole number from 1 to 10000`);
  const { path, label } = await subjectsPath(options.subjectsFrom);
  // Every line is checked before the first subject runs: a bad line deletes nothing.
  const total = await validateSubjects(path, label, policy);
  const why = unbatchable(policy);
  const batchSize = why ? 1 : asked;
  options.stderr(`purgekit ${command} ${policy.name}: ${total} ${total === 1 ? 'subject' : 'subjects'} from ${label}, ${batchSize} per transaction${why && asked > 1 ? ` (not ${asked}: ${why})` : ''}`);
  if (options.resume && command !== 'apply') throw new UsageError('--resume goes with apply --subjects-from');
  // --backup: one directory per batch inside it (runBatch.ts); a new or empty one, as for a single run (--resume adds to it).
  if (options.backup && command === 'apply' && !options.resume && (await readdir(options.backup).catch(() => [])).length) {
    throw new BackupError(`--backup ${options.backup}: the directory is not empty (with --subjects-from it gets one directory per batch; --resume adds to the one of the run it resumes)`);
  }
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
    // Outcomes are counted as they come; only the failed subjects' lines are kept (100,000 subjects stay small).
    const counts = new Map<SubjectOutcome, number>();
    const exitCodes: Record<string, number> = {};
    let worst = 0;
    let interrupted: number | undefined;
    let deleted = 0;
    const progress = volumeProgress(total, Boolean(options.tty), options.stderr);
    const add = (r: SubjectResult) => {
      counts.set(r.outcome, (counts.get(r.outcome) ?? 0) + 1);
      if (r.outcome === 'skipped') return;
      exitCodes[r.exitCode] = (exitCodes[r.exitCode] ?? 0) + 1;
      if (r.exitCode === ExitCode.interrupted || r.exitCode === ExitCode.terminated) interrupted ??= r.exitCode;
      if (r.outcome === 'failed' || r.exitCode === ExitCode.committedPending) worst = Math.max(worst, r.exitCode);
    };
    const skip = (s: Subject, outcome: SubjectOutcome) => add({ line: s.line, outcome, exitCode: 0, tries: 0, batch: null, matched: null, deleted: null, error: null });
    const ctx: BatchContext = {
      command, options, reviewed, journal, auditLog, label, runId: randomUUID(), next: 1, stopped: false,
      note: (line) => progress.note(line),
      skip: (subjects) => subjects.forEach((s) => skip(s, 'skipped')),
      ended: (batch, subjects) => {
        deleted += batch.outcome === 'committed' ? batch.deleted : 0;
        for (const s of subjects) {
          add(s);
          options.jsonLine?.({ kind: 'subject', ...s });
        }
        options.jsonLine?.(batch);
        const lines = [`${label}: batch ${batch.batch} (${describeLines(batch.lines)}): ${describeBatch(batch)}`];
        for (const s of subjects) if (s.outcome === 'failed' || s.outcome === 'not-found') lines.push(`${label}:${s.line}: ${describeSubject(s)}`);
        progress.batch(lines, subjects.length, subjects.some((s) => s.outcome === 'failed'));
        if (options.stopOnError && subjects.some((s) => s.outcome === 'failed') && !ctx.stopped) {
          ctx.stopped = true;
          progress.note(`--stop-on-error: stopping after ${label}:${subjects.find((s) => s.outcome === 'failed')!.line}; the batches before it are done, the subjects after it are not run`);
        }
      },
    };
    let pending: Subject[] = [];
    for await (const subject of readSubjects(path, label, policy)) {
      if (journal?.done.has(subject.line)) skip(subject, 'done-before');
      else if (ctx.stopped) skip(subject, 'skipped');
      else pending.push(subject);
      if (pending.length >= batchSize) {
        const batch = pending;
        pending = [];
        await settleBatch(ctx, batch);
        collectIfGrown();
      }
    }
    await settleBatch(ctx, pending);
    if (ctx.refused) progress.note(`the run stops: the guard refuses every subject alike (${ctx.refused})`);
    progress.stop();
    const count = (o: SubjectOutcome) => counts.get(o) ?? 0;
    const summary: VolumeSummary = {
      kind: 'summary',
      policy: policy.name,
      command,
      subjects: [...counts.values()].reduce((a, b) => a + b, 0),
      committed: count('committed'),
      notFound: count('not-found'),
      readOnly: count('read-only'),
      failed: count('failed'),
      skipped: count('skipped'),
      doneBefore: count('done-before'),
      runId: journal?.runId ?? null,
      auditRunId: ctx.runId,
      batchSize,
      batches: ctx.next - 1,
      deleted,
      exitCodes,
      exitCode: interrupted ?? worst,
      durationMs: Date.now() - started,
    };
    options.jsonLine?.(summary);
    // The audit log: each batch has its own attempt and outcome records (a single run's, with the batch's number and subjects); the run's summary closes them.
    try {
      auditLog?.append({ version: 1, event: 'volume-summary', journalRunId: summary.runId, planSha256, subjectsFile: label, finishedAt: new Date().toISOString(), ...summary, runId: ctx.runId });
    } catch (e) {
      options.stderr(`warning: the audit log's summary record could not be written to ${options.auditLog}: ${(e as Error).message}`);
    }
    options.stderr(
      `${summary.subjects} subjects in ${summary.batches} ${summary.batches === 1 ? 'transaction' : 'transactions'}: ${summary.committed} committed, ${summary.notFound} not found, ${summary.readOnly} read-only, ${summary.failed} failed, ${summary.skipped} not run${summary.doneBefore ? `, ${summary.doneBefore} done before (--resume)` : ''}; ${summary.deleted} rows deleted` +
        (summary.failed ? `; exit codes ${Object.entries(exitCodes).map(([c, n]) => `${c}: ${n}`).join(', ')}` : ''),
    );
    return { summary, exitCode: summary.exitCode };
  }
}

function describeLines(lines: readonly number[]): string {
  if (lines.length === 1) return `line ${lines[0]}`;
  const contiguous = lines.every((l, i) => i === 0 || l === lines[i - 1]! + 1);
  return `${lines.length} subjects, lines ${contiguous ? `${lines[0]}-${lines.at(-1)}` : lines.length <= 8 ? lines.join(', ') : `${lines[0]} to ${lines.at(-1)}`}`;
}

function describeBatch(b: BatchResult): string {
  const tries = b.tries > 1 ? ` (after ${b.tries} tries)` : '';
  switch (b.outcome) {
    case 'committed':
      return `committed, ${b.deleted} rows deleted in ${b.durationMs} ms${tries}${b.backup ? `; backup in ${b.backup}` : ''}${b.error ? ` (exit ${b.exitCode}: ${b.error})` : ''}`;
    case 'not-found':
      return 'nothing found: nothing to purge';
    case 'read-only':
      return 'read-only (plan)';
    default:
      return `FAILED (exit ${b.exitCode}${tries}): ${b.error}; rolled back` +
        (b.rerun === 'one-per-transaction' ? `, its ${b.lines.length} subjects run again one per transaction` : b.rerun === 'without-refused' ? ', its other subjects run again without the refused ones' : '');
  }
}

function describeSubject(r: SubjectResult): string {
  switch (r.outcome) {
    case 'not-found':
      return 'not found: nothing to purge';
    case 'read-only':
      return `would purge (${r.matched ?? '?'} matched), read-only`;
    default:
      return `FAILED (exit ${r.exitCode}${r.tries > 1 ? `, ${r.tries} tries` : ''}): ${r.error}`;
  }
}
