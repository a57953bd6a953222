import { CONNECTION, optional, PATHS, pathsOf, type PurgekitCommand } from './common.js';

export const lint: PurgekitCommand = {
  command: 'lint [paths..]',
  describe: 'Check policies against a live schema: missing tables, FK order, coverage gaps, unindexed FKs, wipe reach, SQL that does not plan',
  builder: (y) =>
    y.positional('paths', PATHS).options({
      connection: CONNECTION,
      reporter: { choices: ['text', 'json', 'gcc'] as const, default: 'text' as const, describe: 'Output format (docs/LINT.md)' },
      strict: { type: 'boolean', default: false, describe: 'Warnings fail too (exit 1)' },
      verbose: { type: 'boolean', default: false, describe: 'Print long fixes in full (an index on every partition)' },
    }),
  handler: async (args) => {
    const { lintCommand } = await import('../commands/lint.js');
    const { output, exitCode } = await lintCommand({
      paths: pathsOf(args),
      ...optional('connection', args['connection']),
      reporter: args['reporter'] as 'text' | 'json' | 'gcc',
      strict: Boolean(args['strict']),
      verbose: Boolean(args['verbose']),
    });
    process.stdout.write(output);
    return exitCode;
  },
};
