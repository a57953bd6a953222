import { DEFAULT_AUDIT_LOG } from '../commands/defaults.js';
import { CONNECTION, optional, print, say, type CliContext } from './common.js';
import { policyCommand } from './policyCommand.js';

export const residue = (ctx: CliContext) =>
  policyCommand(ctx, {
    command: 'residue',
    describe: "Where a purge policy's subject still appears outside what the policy removes (docs/RESIDUE.md); exit 4 on a finding or an incomplete scan",
    options: {
      value: { type: 'string', array: true, default: [], describe: 'An identifying value given directly: name=value (the subject key, an identifier column, a lookup param)' },
      connection: CONNECTION,
      schema: { type: 'string', array: true, describe: 'Only these schemas' },
      include: { type: 'string', array: true, default: [], describe: 'Only these tables (name or schema.name, * as wildcard)' },
      exclude: { type: 'string', array: true, default: [], describe: 'Not these tables' },
      estimate: { type: 'boolean', default: false, describe: 'Read nothing: print what a scan would read (pg_class, pg_stats) and how (EXPLAIN)' },
      'max-seconds': { type: 'string', describe: 'Stop after this many seconds and name the tables not scanned' },
      keys: { type: 'string', default: '5', describe: 'Primary keys shown per finding' },
      substring: { type: 'boolean', default: true, describe: 'Also search values as substrings (--no-substring: exact, JSON and array matches only)' },
      'audit-log': { type: 'string', default: DEFAULT_AUDIT_LOG, describe: "Its key (<log>.key), if present, gives each value's HMAC in the report" },
      json: { type: 'boolean', default: false, describe: 'Print one JSON document on stdout (docs/residue-output.schema.json)' },
    },
    example: 'purgekit residue rephlo-purge-user --email alice@example.com',
    run: async ({ target, args, values, pairs, escapedPairs }) => {
      const seconds = args['max-seconds'] === undefined ? undefined : Number(args['max-seconds']);
      const { residueCommand } = await import('../commands/residue.js');
      const { output, lines, exitCode } = await residueCommand({
        target,
        policiesDir: args['policies'] as string,
        values: await values(),
        pairs,
        escapedPairs,
        valuePairs: args['value'] as string[],
        ...optional('connection', args['connection']),
        ...(args['schema'] ? { schemas: args['schema'] as string[] } : {}),
        include: args['include'] as string[],
        exclude: args['exclude'] as string[],
        estimate: Boolean(args['estimate']),
        ...(seconds !== undefined ? { maxSeconds: Number.isNaN(seconds) ? -1 : seconds } : {}),
        keys: /^\d+$/.test(String(args['keys'])) ? Number(args['keys']) : -1,
        substring: args['substring'] !== false,
        auditLog: args['audit-log'] as string,
        stderr: say,
      });
      if (args['json']) process.stdout.write(`${JSON.stringify(output, null, 2)}\n`);
      for (const line of lines) (args['json'] ? say : print)(line);
      return exitCode;
    },
  });
