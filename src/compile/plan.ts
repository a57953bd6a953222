import type { FlagDecl, ParamDecl, PolicyKind, TableName } from '../policy.js';

/**
 * A compiled plan: the exact statements the generated file holds, in order, each tagged with
 * its role and the table it touches. render() turns it into text; the runner executes the same
 * statements (all but begin and commit) inside a transaction it opens itself.
 */
export type StatementRole =
  | 'begin' // the file's own BEGIN: never sent by the runner
  | 'setup' // session settings and the report table
  | 'params' // the one parameter block
  | 'subject' // the subject table and its lookups
  | 'guard' // assertions that raise before anything is removed
  | 'preserve' // counts of rows that must survive
  | 'expect' // an expectation, recorded in the report
  | 'step' // one delete
  | 'wipe' // the TRUNCATE
  | 'check' // assertions that raise after the steps
  | 'commit' // the file's own COMMIT: never sent by the runner
  | 'report'; // the closing result set

export interface PlanStatement {
  readonly role: StatementRole;
  /** One-line heading of the statement's comment. */
  readonly title: string;
  /** Further comment lines: what it removes and why. */
  readonly notes: readonly string[];
  /** The statement, without its trailing semicolon. */
  readonly sql: string;
  /** Laid out by purgekit itself (sql-formatter would split it badly); not reformatted. */
  readonly verbatim?: boolean;
  readonly table?: TableName;
  /** 1-based step number for role 'step'. */
  readonly step?: number;
  /**
   * What `purgekit plan` (a read-only dry run) executes instead: absent means the same
   * statement, null means none (the TRUNCATE, checks that need the steps to have run), a string
   * a variant that only reads (lookups without FOR UPDATE, steps that count instead of delete).
   */
  readonly dryRun?: string | null;
  /**
   * The author's SQL of this statement as one plain statement that EXPLAIN can plan without
   * running it (a step's DELETE, a lookup's SELECT, an expectation's query): for lint.
   */
  readonly probe?: string;
  /** Where the author's SQL sits in the policy: ['steps', 2, 'where'] and the like, for lint. */
  readonly source?: readonly (string | number)[];
  /** A step's DELETE condition ('' for every row), preserve exclusions included: what a backup copies. */
  readonly condition?: string;
  /** A step's flag (if:) and whether its table is optional: a backup copies only what will run. */
  readonly flag?: string;
  readonly optional?: boolean;
  /** Tables a step declares it changes by cascade or trigger (role 'step'). */
  readonly cascades?: readonly TableName[];
}

export interface Plan {
  readonly name: string;
  readonly kind: PolicyKind;
  readonly description?: string;
  readonly source: { readonly path: string; readonly sha256: string };
  readonly params: readonly ParamDecl[];
  readonly flags: readonly FlagDecl[];
  /** The params block has a force_multi switch (purge policies). */
  readonly forceMulti: boolean;
  readonly maxSubjects: number;
  /** allow_functions: volatile functions the author vouches for (shown in the file's header). */
  readonly allowFunctions?: readonly string[];
  readonly statements: readonly PlanStatement[];
}

/** The SQLSTATEs the script raises: defined with the errors they map to, re-exported for the compiler. */
export { GuardCode } from '../core/errors.js';
