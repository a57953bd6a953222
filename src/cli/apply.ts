import type { Options } from 'yargs';
import { DEFAULT_AUDIT_LOG } from '../commands/defaults.js';
import { type CliContext } from './common.js';
import { policyCommand } from './policyCommand.js';
import { RUN_OPTIONS, runPolicy } from './run.js';
import { RUN_RESIDUE_OPTIONS } from './residueOptions.js';

/** apply's own options besides the run options. */
export const APPLY_OPTIONS = {
  confirm: { type: 'string', describe: 'Required (with guard.confirm: subject alone, the confirmed subject stands for it). With guard.confirm: database, the database name (typed at a terminal if left empty)' },
  'audit-log': { type: 'string', default: DEFAULT_AUDIT_LOG, describe: 'Append one JSON line per apply here' },
  backup: { type: 'string', describe: 'First copy the rows it removes into this new or empty directory (restorable with purgekit restore)' },
  // guard.confirm: subject (src/run/confirmSubject.ts); repeated, not array: an array option would swallow the policy after it.
  'confirm-subject': { type: 'string', describe: "With guard.confirm: subject, the subject's subject.display value, exactly (case and spaces count); once per matched subject. At a terminal apply asks for it instead" },
} as const satisfies Record<string, Options>;

/**
 * apply's options as plan and verify take them: parsed but not listed, so that `plan --backup`
 * says "--backup goes with apply" instead of taking it for a policy parameter.
 */
export const APPLY_ONLY: Readonly<Record<string, Options>> = Object.fromEntries(
  Object.entries(APPLY_OPTIONS).map(([name, o]) => [name, { type: o.type, hidden: true }]),
);

export const apply = (ctx: CliContext) =>
  policyCommand(ctx, {
    command: 'apply',
    describe: 'Run a policy in one transaction with row-count checks; COMMIT only if every check holds',
    options: { ...RUN_OPTIONS, ...APPLY_OPTIONS, ...RUN_RESIDUE_OPTIONS },
    example: 'purgekit apply nexus-purge-user --email a@b.c --delete-owned-companies --confirm',
    run: (input) => runPolicy('apply', input),
  });
