/**
 * `purgekit completion` prints yargs' shell script; the script asks `purgekit
 * --get-yargs-completions <words>`, answered here: yargs' own completions (commands, and the
 * options of the command being typed, a policy's params and flags among them once the policy
 * is named), plus the policy names where a command takes a policy.
 */
import { DEFAULT_POLICIES } from '../commands/defaults.js';
import type { CliContext } from './common.js';

type Done = (completions: string[]) => void;
type Fallback = (onCompleted?: (error: Error | null, completions: string[] | undefined) => void) => unknown;

export function completion(ctx: CliContext, policyCommands: ReadonlySet<string>) {
  return (current: string, argv: { _: (string | number)[]; policies?: string }, fallback: Fallback, done: Done): void => {
    fallback((error, completions) => {
      if (error) throw error;
      // argv._ holds the command and the word being typed: that word is the policy, and only
      // a policy fits there.
      const naming = ctx.policies && argv._.length === 2 && policyCommands.has(String(argv._[0])) && !current.startsWith('-');
      const names = naming ? ctx.policies!.policyNames(argv.policies ?? DEFAULT_POLICIES).filter((n) => n.startsWith(current)) : [];
      done(names.length ? names : (completions ?? []));
    });
  };
}
