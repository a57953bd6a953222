import { CONNECTION, optional, print, say, type PurgekitCommand } from './common.js';

export const counts: PurgekitCommand = {
  command: 'counts',
  describe: 'Row counts of every table (exact; --estimate from statistics); exit 4 when a --critical table is empty',
  builder: (y) =>
    y.options({
      connection: CONNECTION,
      critical: { type: 'string', array: true, default: [], describe: 'Tables that must not be empty (name or schema.name; repeat or comma-separate)' },
      estimate: { type: 'boolean', default: false, describe: "Use the planner's estimates instead of counting (no table scans)" },
      schema: { type: 'string', array: true, describe: 'Only these schemas (default: all but the system ones)' },
      json: { type: 'boolean', default: false, describe: 'Print one JSON document on stdout' },
    }),
  handler: async (args) => {
    const { countsCommand } = await import('../commands/counts.js');
    const { output, exitCode, lines } = await countsCommand({
      ...optional('connection', args['connection']),
      critical: (args['critical'] as string[]).flatMap((c) => c.split(',')).map((c) => c.trim()).filter(Boolean),
      estimate: Boolean(args['estimate']),
      ...(args['schema'] ? { schemas: args['schema'] as string[] } : {}),
    });
    // The counts are the data: on stdout, unless --json puts the document there.
    if (args['json']) process.stdout.write(`${JSON.stringify(output, null, 2)}\n`);
    for (const line of lines) (args['json'] ? say : print)(line);
    if (output.emptyCritical.length) say(`purgekit: critical tables are empty: ${output.emptyCritical.join(', ')}`);
    return exitCode;
  },
};
