import { CONNECTION, optional, say, type PurgekitCommand } from './common.js';

export const discover: PurgekitCommand = {
  command: 'discover',
  describe: 'Write a purge policy skeleton for one row of --table and everything that references it, children first',
  builder: (y) =>
    y.options({
      table: { type: 'string', demandOption: true, describe: 'The table of the rows to purge (name or schema.name)' },
      key: { type: 'string', demandOption: true, describe: 'The column that identifies a row (becomes the lookup parameter)' },
      name: { type: 'string', describe: 'Policy name (default: purge-<table>)' },
      schema: { type: 'string', describe: 'Schema of a bare --table (default public)' },
      out: { type: 'string', describe: 'Write the policy to this file (never overwrites) instead of stdout' },
      connection: CONNECTION,
    }),
  handler: async (args) => {
    const { discoverCommand } = await import('../commands/discover.js');
    const { yaml, path } = await discoverCommand({
      table: args['table'] as string,
      key: args['key'] as string,
      ...optional('name', args['name']),
      ...optional('schema', args['schema']),
      ...optional('out', args['out']),
      ...optional('connection', args['connection']),
    });
    if (path) say(`wrote ${path}; review it, then purgekit validate and compile`);
    else process.stdout.write(yaml);
  },
};
