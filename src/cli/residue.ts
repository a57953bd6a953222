import { DEFAULT_AUDIT_LOG } from '../commands/defaults.js';
import { CONNECTION, optional, print, say, type CliContext } from './common.js';
import { policyCommand } from './policyCommand.js';
import { maxSeconds, SCAN_OPTIONS } from './residueOptions.js';

export const residue = (ctx: CliContext) =>
  policyCommand(ctx, {
    command: 'residue',
    describe: "Where a purge policy's subject still appears outside what the policy removes (docs/RESIDUE.md); exit 4 on a finding or an incomplete scan",
    options: {
      value: { type: 'string', array: true, default: [], describe: 'An identifying value given directly: name=value (the subject key, an identifier column, a lookup param)' },
      connection: CONNECTION,
      ...SCAN_OPTIONS,
      estimate: { type: 'boolean', default: false, describe: 'Read nothing: print what a scan would read (pg_class, pg_stats) and how (EXPLAIN)' },
      keys: { type: 'string', default: '5', describe: 'Primary keys shown per finding' },
      substring: { type: 'boolean', default: true, describe: 'Also search values as substrings (--no-substring: exact, JSON and array matches only)' },
      'audit-log': { type: 'string', default: DEFAULT_AUDIT_LOG, describe: "Its key (<log>.key), if present, gives each value's HMAC in the report" },
      json: { type: 'boolean', default: false, describe: 'Print one JSON document on stdout (docs/residue-output.schema.json)' },
    },
    example: 'purgekit residue rephlo-purge-user --email alice@example.com',
    run: async ({ target, args, values, pairs, escapedPairs }) => {
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
        ...maxSeconds(args),
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
