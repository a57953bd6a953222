import { DEFAULT_AUDIT_LOG } from '../commands/defaults.js';
import { UsageError } from '../core/errors.js';
import { CONNECTION, optional, print, say, type PurgekitCommand } from './common.js';

/** purgekit outbox init | run | list (after_commit's jobs; README: Side effects after COMMIT). */
export const outbox: PurgekitCommand = {
  command: 'outbox <action>',
  describe: "after_commit's side effects: init creates purgekit.outbox; run does the pending and failed jobs; list shows them",
  builder: (y) =>
    y
      .positional('action', { choices: ['init', 'run', 'list'] as const, describe: 'init | run | list' })
      .options({
        connection: CONNECTION,
        json: { type: 'boolean', default: false, describe: 'list, run: one JSON document on stdout (docs/outbox-output.schema.json)' },
        all: { type: 'boolean', default: false, describe: 'list: done jobs too' },
        'audit-log': { type: 'string', default: DEFAULT_AUDIT_LOG, describe: 'run: append one JSON line per job outcome here' },
        attempts: { type: 'number', default: 3, describe: 'run: tries per job before it is left failed' },
        'lease-seconds': { type: 'number', describe: 'run: how long a claim holds without renewal (default 60; renewed every third of it while the job runs)' },
      }),
  handler: async (args) => {
    const commands = await import('../commands/outbox.js');
    const connection = optional('connection', args['connection']);
    switch (args['action']) {
      case 'init':
        await commands.outboxInit({ ...connection, say });
        say('purgekit.outbox is ready');
        return 0;
      case 'run': {
        const attempts = Math.max(1, Math.floor(Number(args['attempts'])));
        const lease = args['lease-seconds'] === undefined ? undefined : Number(args['lease-seconds']);
        if (lease !== undefined && !(lease >= 1)) throw new UsageError('--lease-seconds: expected a number of seconds (1 or more)');
        const { jobs, exitCode } = await commands.outboxRun({ ...connection, say, auditLog: args['audit-log'] as string, attempts, backoffMs: 200, ...(lease !== undefined ? { leaseSeconds: lease } : {}) });
        if (args['json']) print(JSON.stringify({ version: 1, command: 'outbox run', exitCode, jobs }, null, 2));
        return exitCode;
      }
      default: {
        const rows = await commands.outboxList({ ...connection, say, all: Boolean(args['all']) });
        if (args['json']) print(JSON.stringify({ version: 1, command: 'outbox list', jobs: rows }, null, 2));
        else for (const r of rows) print(`${r.id}\t${r.status}${r.leaseUntil ? ` (lease until ${r.leaseUntil})` : ''}\t${r.policy} #${r.action} ${r.kind}\tattempts ${r.attempts}${r.lastError ? `\t${r.lastError}` : ''}`);
        return 0;
      }
    }
  },
};
