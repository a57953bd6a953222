import { DEFAULT_OUT } from '../commands/defaults.js';
import { DriftError } from '../core/errors.js';
import { PATHS, pathsOf, say, type PurgekitCommand } from './common.js';

export const compile: PurgekitCommand = {
  command: 'compile [paths..]',
  describe: 'Write generated/<name>.sql for each policy (--check: fail if generated/ is out of date)',
  builder: (y) =>
    y.positional('paths', PATHS).options({
      out: { type: 'string', default: DEFAULT_OUT, describe: 'Directory of generated SQL files' },
      check: { type: 'boolean', default: false, describe: 'Write nothing; exit 4 naming every stale, missing, hand-edited or orphaned file' },
    }),
  handler: async (args) => {
    const out = args['out'] as string;
    const { checkCommand, compileCommand } = await import('../commands/compile.js');
    if (args['check']) {
      // Orphans only when the whole directory was compiled: a part cannot know what others own.
      const problems = await checkCommand(pathsOf(args), out, { orphans: !(args['paths'] as string[] | undefined)?.length });
      if (problems.length) throw new DriftError(problems);
      say(`${out}/ is up to date`);
      return;
    }
    const { written, unchanged } = await compileCommand(pathsOf(args), out);
    for (const path of written) say(`wrote ${path}`);
    say(`${written.length} written, ${unchanged.length} unchanged`);
  },
};
