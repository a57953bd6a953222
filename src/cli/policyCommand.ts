/**
 * A command that takes a policy (render, plan, apply, verify). Its options are its own plus the
 * policy's params and flags, read from the policy the command line names: --help lists them,
 * completion offers them, and an option that is neither is refused with a did-you-mean. An own
 * option always means the command's: a param of the same name is given with --param name=value.
 */
import type { Argv, Options } from 'yargs';
import { DEFAULT_POLICIES } from '../commands/defaults.js';
import { UsageError } from '../core/errors.js';
import { didYouMean } from '../validate/didYouMean.js';
import type { Args, CliContext, PurgekitCommand } from './common.js';
import type { DeclaredOptions } from './policyOptions.js';

export interface PolicyInput {
  readonly target: string;
  readonly args: Args;
  /**
   * The policy's params and flags as given on the command line (kebab-case keys); a usage error
   * for an option that is neither the command's nor the policy's. Called by the command, inside
   * its own error handling (plan --json answers such an error with a document).
   */
  readonly values: () => Promise<Readonly<Record<string, unknown>>>;
  readonly pairs: readonly string[];
  readonly escapedPairs: readonly string[];
}

export interface PolicyCommandSpec {
  readonly command: 'render' | 'plan' | 'apply' | 'verify' | 'residue';
  readonly describe: string;
  /** The command's own options (besides --param, --param-escaped and the global ones). */
  readonly options: Readonly<Record<string, Options>>;
  readonly example: string;
  readonly run: (input: PolicyInput) => Promise<number | void>;
}

const VALUE_OPTIONS = {
  param: { type: 'string', array: true, default: [], describe: 'A parameter as name=value (also: --<name> <value>)' },
  'param-escaped': { type: 'string', array: true, default: [], describe: 'A parameter as name=value, value with JSON string escapes (\\uFFFD, \\\\, \\")' },
} as const satisfies Record<string, Options>;

/** Keys yargs adds to every parse. */
const PARSER_KEYS = new Set(['_', '$0']);

export function policyCommand(ctx: CliContext, spec: PolicyCommandSpec): PurgekitCommand {
  // Set by the builder, read by the handler: yargs runs them in this order, once per process.
  let own = new Set<string>();
  let declared: DeclaredOptions | undefined;
  return {
    command: `${spec.command} <policy>`,
    describe: spec.describe,
    builder: (y: Argv) => {
      y.positional('policy', { type: 'string', describe: 'Policy name, policy file, or generated .sql file' })
        .options({ ...VALUE_OPTIONS, ...spec.options })
        .strict(false)
        .parserConfiguration({ 'camel-case-expansion': false, 'parse-numbers': false, 'parse-positional-numbers': false, 'dot-notation': false });
      const known = (y as unknown as { getOptions(): { key: Record<string, unknown>; boolean: string[] } }).getOptions();
      own = new Set(Object.keys(known.key));
      const { target, policiesDir } = locate(ctx.argv, spec.command, (key) => (own.has(key) ? !known.boolean.includes(key) : undefined));
      declared = target === undefined ? undefined : ctx.policies?.declaredOptions(target, policiesDir);
      if (!declared) return y.epilogue(`The policy's params and flags are options too (${spec.command} <policy> --help lists them): ${spec.example}`);
      return declare(y, declared, own);
    },
    handler: (args) =>
      spec.run({
        target: args['policy'] as string,
        args,
        values: async () => {
          const extra = args._.slice(1);
          if (extra.length) throw new UsageError(`unexpected argument ${JSON.stringify(String(extra[0]))}: ${spec.command} takes one policy, and a flag takes no value (--<flag>=false to unset one)`);
          if (declared) return givenValues(args, declared, own, spec.command);
          // The policy did not load (the command says why): hand it every option that is not its own.
          return Object.fromEntries(Object.entries(args).filter(([k]) => !own.has(k) && !PARSER_KEYS.has(k)));
        },
        pairs: args['param'] as string[],
        escapedPairs: args['param-escaped'] as string[],
      }),
  };
}

/** A purge policy's switch for more subjects than subject.max, an option like its flags. */
const FORCE_MULTI = { name: 'force_multi', default: false, description: 'Purge every matching subject even when more than subject.max match' };

function flagsOf(declared: DeclaredOptions) {
  return [...declared.flags, ...(declared.kind === 'purge' ? [FORCE_MULTI] : [])];
}

const kebab = (name: string) => name.replaceAll('_', '-');

/** The policy's params and flags as options of this command, grouped under the policy's name. */
function declare(y: Argv, declared: DeclaredOptions, own: ReadonlySet<string>): Argv {
  const shadowed: string[] = [];
  const params = declared.params.filter((p) => (own.has(kebab(p.name)) ? void shadowed.push(p.name) : true));
  const flags = flagsOf(declared).filter((f) => (own.has(kebab(f.name)) ? void shadowed.push(f.name) : true));
  for (const p of params) {
    const traits = [p.type, p.normalize ? `${p.normalize}-cased` : '', p.personal ? 'personal' : ''].filter(Boolean).join(', ').replace('trim-cased', 'trimmed');
    y.option(kebab(p.name), { describe: `${p.description ?? ''} [${traits}]`.trim(), group: `Parameters of ${declared.name}:` });
  }
  for (const f of flags) {
    y.option(kebab(f.name), { type: 'boolean', describe: f.description ?? '', defaultDescription: String(f.default), group: `Flags of ${declared.name}:` });
  }
  const notes = [`${declared.name}: a ${declared.kind} policy (${declared.file}).`];
  if (shadowed.length) notes.push(`Given with --param only (its name is an option of this command): ${shadowed.map((n) => `--param ${n}=...`).join(', ')}.`);
  return y.epilogue(notes.join(' '));
}

/** The declared options that were given; any other option is refused, with the nearest known one. */
async function givenValues(args: Args, declared: DeclaredOptions, own: ReadonlySet<string>, command: string): Promise<Record<string, unknown>> {
  const names = [...declared.params, ...flagsOf(declared)].map((d) => kebab(d.name)).filter((k) => !own.has(k));
  const values: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(args)) {
    if (own.has(key) || PARSER_KEYS.has(key)) continue;
    if (names.includes(key)) {
      values[key] = value;
      continue;
    }
    const { describeOptions } = await import('../values.js');
    const hint = didYouMean(key, [...names, ...[...own].filter((k) => k !== 'policy')]);
    throw new UsageError(
      `unknown option --${key} for policy ${declared.name}; it takes ${describeOptions(declared)}${hint ? ` (did you mean --${hint}?)` : ''}; purgekit ${command} ${declared.name} --help lists every option`,
    );
  }
  return values;
}

/**
 * The policy a command line names, before yargs has parsed it: the first argument after the
 * command that is not an option or an option's value. An unknown option (a param, most likely)
 * may or may not take the argument after it, so such an argument is the policy only when no
 * other candidate is left: `apply --email a@b.c nexus-purge-user` and
 * `apply --delete-owned-companies nexus-purge-user --email a@b.c` both name nexus-purge-user.
 */
export function locate(argv: readonly string[], command: string, takesValue: (key: string) => boolean | undefined): { target?: string; policiesDir: string } {
  let policiesDir: string | undefined;
  const clean: string[] = [];
  const unsure: string[] = [];
  const at = argv.indexOf(command);
  for (let i = 0; i < argv.length; i++) {
    const token = argv[i]!;
    if (token === '--') {
      if (i > at) clean.push(...argv.slice(i + 1));
      break;
    }
    if (!token.startsWith('-') || token === '-') {
      if (i > at && at >= 0) clean.push(token);
      continue;
    }
    const eq = token.indexOf('=');
    const key = token.slice(token.startsWith('--') ? 2 : 1, eq < 0 ? undefined : eq);
    const next = argv[i + 1];
    if (key === 'policies') policiesDir = eq < 0 ? next : token.slice(eq + 1);
    if (eq >= 0 || next === undefined || next.startsWith('-')) continue;
    const takes = takesValue(key);
    if (takes === false) continue;
    if (takes === undefined && i > at) unsure.push(next);
    i++;
  }
  return { target: clean[0] ?? unsure[0], policiesDir: policiesDir ?? DEFAULT_POLICIES };
}
