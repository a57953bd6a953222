/**
 * What plan, apply and verify share: their options, and a run that a signal cancels cleanly
 * and that answers --json even when it cannot start.
 */
import type { Options } from 'yargs';
import { DEFAULT_AUDIT_LOG, DEFAULT_OUT } from '../commands/defaults.js';
import { ExitCode, PurgekitError } from '../core/errors.js';
import { ask, CONNECTION, optional, say, type Args } from './common.js';
import type { PolicyInput } from './policyCommand.js';
import type { BatchedOptions } from '../commands/batched.js';
import { runResidueOptions } from './residueOptions.js';

export type RunCommandName = 'plan' | 'apply' | 'verify';

export const RUN_OPTIONS = {
  connection: CONNECTION,
  json: { type: 'boolean', default: false, describe: 'Print one JSON document on stdout (docs/run-output.schema.json)' },
  'lock-timeout': { type: 'string', default: '5s', describe: 'Give up waiting for a lock after this long' },
  'statement-timeout': { type: 'string', default: '15min', describe: 'Give up on a statement running longer than this' },
  generated: { type: 'string', default: DEFAULT_OUT, describe: 'Directory of generated SQL files' },
  'dangerously-run-unreviewed': { type: 'boolean', default: false, describe: 'Run the policy even when its generated file is missing, stale or edited' },
  // Volume (src/volume): many subjects of a purge policy in one run.
  'subjects-from': { type: 'string', describe: 'plan|apply a purge policy for every subject of this file (CSV with a header naming a lookup\'s params, or JSON lines; - for stdin)' },
  'stop-on-error': { type: 'boolean', default: false, describe: 'With --subjects-from: stop at the first subject that fails' },
  resume: { type: 'boolean', default: false, describe: 'With apply --subjects-from: skip the subjects purgekit.journal says a previous run of this policy, plan and file committed' },
  'batch-size': { type: 'number', describe: 'With --subjects-from: subjects per transaction (default 50); every check of a single run holds per batch' },
  retries: { type: 'number', default: 3, describe: 'With --subjects-from: retries of a subject that failed on a transient error (lock timeout, deadlock, ...), with backoff' },
  // Batched cleanup (src/commands/batched.ts): steps with batch: run one transaction per batch.
  'pause-ms': { type: 'number', describe: 'Batched cleanup: pause this long between batch transactions (for replicas and other writers)' },
} as const satisfies Record<string, Options>;

export async function runPolicy(command: RunCommandName, input: PolicyInput): Promise<number> {
  try {
    return await withInterrupt((interrupt, commitSent) => runAndPrint(command, input, interrupt, commitSent));
  } catch (error) {
    // A pipeline asked for JSON: it gets a document even when the run could not start.
    if (input.args['json'] && error instanceof PurgekitError) {
      const doc = { version: 1, command, policy: input.target, outcome: 'error', exitCode: error.exitCode, error: { code: error.name, message: error.message } };
      process.stdout.write(`${JSON.stringify(doc, null, 2)}\n`);
    }
    throw error;
  }
}

/** `work` with SIGINT/SIGTERM turned into an abort of its run (plan, apply, ledger replay). */
export async function withInterrupt<T>(work: (interrupt: AbortSignal, commitSent: () => void) => Promise<T>): Promise<T> {
  // SIGINT/SIGTERM: the run cancels its statement, rolls back, removes an unfinished backup,
  // writes the audit outcome and exits 130/143. A second signal exits at once (the server still
  // rolls back an open transaction when the connection closes).
  // Once COMMIT is sent, a signal cannot take it back: the run waits for its answer.
  const interrupt = new AbortController();
  const state = { commitSent: false };
  const onSignal = (signal: NodeJS.Signals) => {
    const code = signal === 'SIGTERM' ? ExitCode.terminated : ExitCode.interrupted;
    if (interrupt.signal.aborted) process.exit(code);
    say(
      state.commitSent
        ? `purgekit: ${signal}: COMMIT was already sent and cannot be taken back: waiting for its answer (${signal} again to exit at once; the audit log's attempt record then says how to find out)`
        : `purgekit: ${signal}: cancelling the running statement and rolling back (${signal} again to exit at once)`,
    );
    interrupt.abort(signal);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    return await work(interrupt.signal, () => (state.commitSent = true));
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

async function runAndPrint(command: RunCommandName, input: PolicyInput, interrupt: AbortSignal, commitSent: () => void): Promise<number> {
  const { args } = input;
  if (args['subjects-from'] !== undefined) return runVolume(command, input, interrupt, commitSent);
  const [{ reviewedPlan }, { runAtTerminal }, { runJson }] = await Promise.all([import('../commands/run.js'), import('../interactive/apply.js'), import('../run/output.js')]);
  const options = await runOptions(input, interrupt, commitSent);
  const reviewed = await reviewedPlan(options);
  // Batched cleanup (src/commands/batched.ts): a policy with batch: steps runs batch by batch.
  if (reviewed.plan.nodes.some((n) => n.kind === 'apply-only')) return runBatchedCli(command, input, { ...options, reviewed });
  if (args['pause-ms'] !== undefined) throw new PurgekitError('usage', '--pause-ms goes with a cleanup policy whose steps declare batch:', ExitCode.usage);
  if (args['resume']) throw new PurgekitError('usage', '--resume goes with apply --subjects-from, or apply of a batched cleanup', ExitCode.usage);
  // apply at a terminal may ask (the subject, the typed confirmation: src/interactive); never without one.
  const terminal = Boolean(process.stdin.isTTY && process.stderr.isTTY);
  const { output, exitCode } = await runAtTerminal(command, { ...options, reviewed }, terminal);
  if (args['json']) process.stdout.write(`${JSON.stringify(runJson(output), null, 2)}\n`);
  return exitCode;
}

/** A batched cleanup: --pause-ms, --resume; --json is one JSON line per batch and a summary (docs/FORMATS.md). */
async function runBatchedCli(command: RunCommandName, input: PolicyInput, options: Omit<BatchedOptions, 'pauseMs' | 'resume' | 'json' | 'stdout'>): Promise<number> {
  const { args } = input;
  const pauseMs = args['pause-ms'] === undefined ? 0 : Number(args['pause-ms']);
  if (!Number.isInteger(pauseMs) || pauseMs < 0 || pauseMs > 600_000) throw new PurgekitError('usage', `--pause-ms ${String(args['pause-ms'])}: expected a whole number of milliseconds from 0 to 600000`, ExitCode.usage);
  const { runBatchedCommand } = await import('../commands/batched.js');
  return runBatchedCommand(command, { ...options, pauseMs, resume: Boolean(args['resume']), json: Boolean(args['json']), stdout: (text) => process.stdout.write(text) });
}

/** --subjects-from: src/volume runs each subject through runCommand; --json is one JSON line per subject and a summary. */
async function runVolume(command: RunCommandName, input: PolicyInput, interrupt: AbortSignal, commitSent: () => void): Promise<number> {
  const { args } = input;
  if (command === 'verify') throw new PurgekitError('usage', '--subjects-from goes with plan or apply (of a purge policy)', ExitCode.usage);
  if (args['rehearse']) throw new PurgekitError('usage', '--subjects-from does not go with --rehearse', ExitCode.usage);
  if (args['residue']) throw new PurgekitError('usage', '--subjects-from does not go with --residue yet (run purgekit residue per subject)', ExitCode.usage);
  const { runSubjects, DEFAULT_BATCH_SIZE } = await import('../volume/batches.js');
  const retries = retriesOf(args);
  const { exitCode } = await runSubjects(command, {
    ...(await runOptions(input, interrupt, commitSent)),
    subjectsFrom: args['subjects-from'] as string,
    stopOnError: Boolean(args['stop-on-error']),
    batchSize: args['batch-size'] === undefined ? DEFAULT_BATCH_SIZE : Number(args['batch-size']),
    resume: Boolean(args['resume']),
    tty: Boolean(process.stderr.isTTY),
    retries,
    backoffMs: 200,
    ...(args['json'] ? { jsonLine: (doc: object) => process.stdout.write(`${JSON.stringify(doc)}\n`) } : {}),
  });
  return exitCode;
}

/** --retries: a whole number from 0 to 20. */
export function retriesOf(args: Args): number {
  const retries = Number(args['retries']);
  if (!Number.isInteger(retries) || retries < 0 || retries > 20) throw new PurgekitError('usage', `--retries ${String(args['retries'])}: expected a whole number from 0 to 20`, ExitCode.usage);
  return retries;
}

async function runOptions(input: PolicyInput, interrupt: AbortSignal, commitSent: () => void) {
  const { args } = input;
  return {
    target: input.target,
    values: await input.values(),
    pairs: input.pairs,
    escapedPairs: input.escapedPairs,
    rehearse: Boolean(args['rehearse']),
    ...optional('backup', args['backup']),
    ...applyOptions(args, interrupt, commitSent),
  };
}

/** The options of an apply read from the command line (apply, plan, ledger replay). */
export function applyOptions(args: Args, interrupt: AbortSignal, commitSent: () => void) {
  return {
    policiesDir: args['policies'] as string,
    generatedDir: args['generated'] as string,
    ...optional('connection', args['connection']),
    lockTimeout: args['lock-timeout'] as string,
    statementTimeout: args['statement-timeout'] as string,
    ...optional('confirm', args['confirm']),
    auditLog: (args['audit-log'] as string | undefined) ?? DEFAULT_AUDIT_LOG,
    ...(args['confirm-subject'] !== undefined ? { confirmSubject: [args['confirm-subject']].flat().map(String) } : {}),
    dangerouslyRunUnreviewed: Boolean(args['dangerously-run-unreviewed']),
    ...(process.stdin.isTTY ? { ask } : {}),
    stderr: say,
    color: Boolean(process.stderr.isTTY) && !process.env['NO_COLOR'],
    interrupt,
    commitSent,
    ...runResidueOptions(args),
  };
}
