import { type CliContext } from './common.js';
import { policyCommand } from './policyCommand.js';
import { APPLY_ONLY } from './apply.js';
import { RUN_OPTIONS, runPolicy } from './run.js';

export const verify = (ctx: CliContext) =>
  policyCommand(ctx, {
    command: 'verify',
    describe: "Run a check policy's expectations read-only; exit 4 if any fails",
    options: { ...RUN_OPTIONS, ...APPLY_ONLY },
    example: 'purgekit verify nexus-integrity',
    run: (input) => runPolicy('verify', input),
  });
