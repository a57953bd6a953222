import { DEFAULT_AUDIT_LOG } from '../commands/defaults.js';
import { type CliContext } from './common.js';
import { policyCommand } from './policyCommand.js';
import { RUN_OPTIONS, runPolicy } from './run.js';

export const apply = (ctx: CliContext) =>
  policyCommand(ctx, {
    command: 'apply',
    describe: 'Run a policy in one transaction with row-count checks; COMMIT only if every check holds',
    options: {
      ...RUN_OPTIONS,
      confirm: { type: 'string', describe: 'Required. With guard.confirm: database, the database name (typed at a terminal if left empty)' },
      'audit-log': { type: 'string', default: DEFAULT_AUDIT_LOG, describe: 'Append one JSON line per apply here' },
      backup: { type: 'string', describe: 'First copy the rows it removes into this new or empty directory (restorable with purgekit restore)' },
    },
    example: 'purgekit apply nexus-purge-user --email a@b.c --delete-owned-companies --confirm',
    run: (input) => runPolicy('apply', input),
  });
