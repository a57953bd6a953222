import { type CliContext } from './common.js';
import { policyCommand } from './policyCommand.js';

export const render = (ctx: CliContext) =>
  policyCommand(ctx, {
    command: 'render',
    describe: 'Print the standalone script of a policy with its parameters filled in, ready to paste',
    options: {},
    example: 'purgekit render nexus-purge-user --email a@b.c --delete-owned-companies',
    run: async ({ target, args, values, pairs, escapedPairs }) => {
      const { renderCommand } = await import('../commands/render.js');
      process.stdout.write(await renderCommand(target, { policiesDir: args['policies'] as string, values: await values(), pairs, escapedPairs }));
    },
  });
