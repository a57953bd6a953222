import { InvalidPolicyError } from '../core/errors.js';
import { PATHS, pathsOf, say, type PurgekitCommand } from './common.js';

export const validate: PurgekitCommand = {
  command: 'validate [paths..]',
  describe: 'Check policy files: schema and semantics, every problem as file:line:col',
  builder: (y) => y.positional('paths', PATHS),
  handler: async (args) => {
    const { validateFiles } = await import('../validate/validateFiles.js');
    const { policies, diagnostics } = await validateFiles(pathsOf(args));
    if (diagnostics.length) throw new InvalidPolicyError(diagnostics);
    say(`${policies.length} ${policies.length === 1 ? 'policy' : 'policies'} valid`);
  },
};
