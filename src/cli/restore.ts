import { PurgekitError } from '../core/errors.js';
import { ask, CONNECTION, optional, say, type PurgekitCommand } from './common.js';

export const restore: PurgekitCommand = {
  command: 'restore <dir>',
  describe: 'Put the rows of an apply --backup back, in one transaction, parents first; refuses if the backup is altered or a row exists',
  builder: (y) =>
    y.positional('dir', { type: 'string', describe: 'The backup directory (with manifest.json)' }).options({
      connection: CONNECTION,
      confirm: { type: 'string', describe: 'Required: the name of the database to restore into (typed at a terminal if left empty)' },
      json: { type: 'boolean', default: false, describe: 'Print one JSON document on stdout (README: restore --json)' },
    }),
  handler: async (args) => {
    const json = (doc: object) => process.stdout.write(`${JSON.stringify({ version: 1, command: 'restore', dir: args['dir'], ...doc }, null, 2)}\n`);
    try {
      const { restoreCommand } = await import('../commands/restore.js');
      const result = await restoreCommand({
        dir: args['dir'] as string,
        ...optional('connection', args['connection']),
        ...optional('confirm', args['confirm']),
        ...(process.stdin.isTTY ? { ask } : {}),
        say,
      });
      say('restored: committed');
      if (args['json']) json({ outcome: 'committed', exitCode: 0, ...result });
    } catch (error) {
      if (args['json'] && error instanceof PurgekitError) json({ outcome: 'error', exitCode: error.exitCode, error: { code: error.name, message: error.message } });
      throw error;
    }
  },
};
