/**
 * apply at a terminal (seed 001's interactive delete): pick the subject when no lookup parameter
 * is given (subject.search), show the dry run and the matched subjects, ask to proceed, have
 * the operator type each subject's display value (guard.confirm: subject), then apply.
 *
 * The typed values are not trusted to still be true: the apply run reads the display values
 * again inside its own transaction, with the subject locked, and refuses (exit 6, rolled back)
 * unless they are exactly what was typed. Without a terminal nothing here asks anything: the
 * run is runCommand's, and a missing lookup or confirmation is its usage error or refusal.
 */
import { ExitCode, RefusedError } from '../core/errors.js';
import { kebab, qualified } from '../core/names.js';
import { connect, currentDatabase } from '../db/connect.js';
import type { Policy } from '../policy.js';
import { collectValues } from '../values.js';
import { reviewedPlan, runCommand, type RunOptions } from '../commands/run.js';
import type { RunOutput } from '../run/output.js';
import { pickSubject } from './pick.js';
import { typed, yesNo } from './prompts.js';

type Result = { output: RunOutput; exitCode: number };

/** plan | apply | verify as runCommand runs them; apply at a terminal asks first (see above). */
export async function runAtTerminal(command: 'plan' | 'apply' | 'verify', options: RunOptions, terminal: boolean): Promise<Result> {
  if (command !== 'apply' || !terminal) return runCommand(command, options);
  const reviewed = options.reviewed ?? (await reviewedPlan(options));
  const { policy } = reviewed;
  const subject = policy.subject;
  if (!subject) return runCommand(command, { ...options, reviewed });
  const given = collectValues(policy, options.values, options.pairs, options.escapedPairs);
  const pick = !subject.lookup.some((l) => l.by.every((b) => given.params.has(b)));
  const confirmSubject = Boolean(policy.guard.confirmSubject) && !options.confirmSubject?.length;
  if (!pick && !confirmSubject) return runCommand(command, { ...options, reviewed });
  // Nothing is asked of an operator whose answers could not lead to an apply.
  if (!policy.guard.confirmSubject && options.confirm === undefined) throw new RefusedError('apply changes data: add --confirm (run purgekit plan first to see what it would do)');

  let values = options.values;
  if (pick) {
    const conn = connect(options.connection);
    try {
      await currentDatabase(conn); // an unreachable server is exit 5 naming the target, as for any run
      values = { ...values, ...(await pickSubject(conn.sql, policy, lookupChoices(policy))) };
    } finally {
      await conn.sql.end({ timeout: 5 });
    }
  }

  // The dry run, in plan mode: the counts, and the matched subjects' display values.
  let shown: readonly (string | null)[] = [];
  const { backup: _backup, confirmSubject: _given, ...planOptions } = options;
  const dry = await runCommand('plan', { ...planOptions, reviewed, values, onSubjects: (display) => (shown = display) });
  if (dry.exitCode !== ExitCode.ok || dry.output.outcome === 'nothing-matched') return dry;
  const display = subject.display;
  if (display !== undefined && policy.guard.confirmSubject) {
    options.stderr(`${shown.length} ${qualified(subject.table)} ${shown.length === 1 ? 'row' : 'rows'} to purge, by ${display}:`);
    for (const value of shown) options.stderr(`  ${value ?? '(NULL)'}`);
  }
  if (pick && !(await yesNo(`Proceed with the purge of ${policy.name}?`))) throw new RefusedError('not confirmed at the terminal: nothing was changed');

  const confirmed: string[] = [...(options.confirmSubject ?? [])];
  if (confirmSubject && display !== undefined) {
    for (const [i, value] of shown.entries()) {
      const which = shown.length === 1 ? 'the subject' : `subject ${i + 1} of ${shown.length}`;
      confirmed.push(await typed(`Type the ${display} of ${which} to confirm (${JSON.stringify(value ?? '')}):`));
    }
  }
  return runCommand('apply', { ...options, reviewed, values, ...(confirmed.length ? { confirmSubject: confirmed } : {}) });
}

function lookupChoices(policy: Policy): string {
  return policy.subject!.lookup.map((l) => l.by.map((b) => `--${kebab(b)}`).join(' + ')).join(', or ');
}
