import { type CliContext } from './common.js';
import { policyCommand } from './policyCommand.js';
import { APPLY_ONLY } from './apply.js';
import { RUN_OPTIONS, runPolicy } from './run.js';
import { RUN_RESIDUE_OPTIONS } from './residueOptions.js';

export const plan = (ctx: CliContext) =>
  policyCommand(ctx, {
    command: 'plan',
    describe: 'Dry run (read-only): what a policy would remove here; --rehearse runs it for real and rolls back',
    options: {
      ...RUN_OPTIONS,
      ...APPLY_ONLY,
      ...RUN_RESIDUE_OPTIONS,
      rehearse: { type: 'boolean', default: false, describe: 'Run every statement for real (same locks as apply), report exact counts incl. cascades and triggers, then roll back' },
    },
    example: 'purgekit plan nexus-purge-user --email a@b.c',
    run: (input) => runPolicy('plan', input),
  });
