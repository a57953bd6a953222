import type { FlagDecl, FunctionName, ParamDecl, PolicyKind, TableName } from '../policy.js';
import type { ParamsShape } from './params.js';
import type { AfterCommitAction } from '../outbox/spec.js';

/**
 * A compiled plan: what the generated file does, in order, as kind-tagged readonly nodes with
 * real fields. Each node is one statement of the file. Nothing downstream reads SQL text back:
 * render, the runner, backups and lint switch on `kind` and read fields, and print.ts turns a
 * node into the text of one mode (the file, the runner's apply, the dry run, a lint probe).
 *
 * Author SQL arrives here already resolved (`sql`): :subject, :set, :param and :flag replaced
 * by reads of the script's own working tables. `text` is what the author wrote.
 */
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
  /** guard.confirm: subject: the subject.display column apply has typed (the file says it cannot ask). */
  readonly confirmSubject?: string;
  readonly nodes: readonly PlanNode[];
}

/** Where the author's SQL of a node sits in the policy: ['steps', 2, 'where'] and the like. */
export type SourcePath = readonly (string | number)[];

/** A resolved piece of the author's SQL, with the text as written (for comments and messages). */
export interface AuthorSql {
  readonly sql: string;
  readonly text: string;
  /** It reads :subject (lint skips its probe when the subject table cannot be made). */
  readonly readsSubject: boolean;
}

/** A preserve rule's condition as a step's DELETE and the guards exclude it. */
export interface PreserveCondition {
  readonly rule: number;
  readonly where: AuthorSql;
  /** The rule applies only while this flag is set. */
  readonly flag?: string;
}

export type PlanNode =
  | { readonly kind: 'begin'; readonly check: boolean }
  | ApplyOnlyNode
  | { readonly kind: 'search-path'; readonly schema: string }
  | { readonly kind: 'lock-timeout' }
  | { readonly kind: 'report-reset' }
  | { readonly kind: 'report-table' }
  | { readonly kind: 'raise-function' }
  | { readonly kind: 'settings-snapshot' }
  | { readonly kind: 'params'; readonly policy: string; readonly shape: ParamsShape }
  | { readonly kind: 'read-only' }
  | { readonly kind: 'tables-guard'; readonly tables: readonly { readonly name: string; readonly why: string }[] }
  | { readonly kind: 'functions-guard'; readonly functions: readonly FunctionName[]; readonly allowFunctions: boolean }
  | { readonly kind: 'subject-table'; readonly table: TableName; readonly key: string }
  | LookupNode
  | { readonly kind: 'subject-count'; readonly table: TableName }
  | SubjectGuardNode
  | { readonly kind: 'analyze'; readonly of: { readonly kind: 'subject' } | { readonly kind: 'set'; readonly name: string } }
  | SetTableNode
  | SetFillNode
  | ExpectNode
  | { readonly kind: 'verdict'; readonly phase: 'before' | 'after'; readonly afterSteps: boolean }
  | PreserveNode
  | PreserveCheckNode
  | StepNode
  | UpdateNode
  | WipeReachTableNode
  | WipeReachNode
  | WipeNode
  | { readonly kind: 'keep-check' }
  | { readonly kind: 'settings-check' }
  | OutboxNode
  | { readonly kind: 'commit'; readonly check: boolean }
  | { readonly kind: 'report' };

export type NodeKind = PlanNode['kind'];

/**
 * The side effect node: after_commit's jobs written to purgekit.outbox in this transaction,
 * before the first delete (so the captured subject columns are still there); run after COMMIT
 * (src/outbox).
 */
export interface OutboxNode {
  readonly kind: 'outbox';
  readonly policy: string;
  readonly actions: readonly AfterCommitAction[];
  /** purge: the subject's table, key and captured columns. */
  readonly subject?: { readonly table: TableName; readonly key: string; readonly capture: readonly string[] };
}

export interface LookupNode {
  readonly kind: 'lookup';
  /** 1-based, of `count`. */
  readonly lookup: number;
  readonly count: number;
  readonly by: readonly string[];
  /** The `by` of each earlier lookup: this one applies only when none of them does. */
  readonly earlier: readonly (readonly string[])[];
  readonly table: TableName;
  readonly key: string;
  readonly where: AuthorSql;
  readonly source: SourcePath;
}

export interface SubjectGuardNode {
  readonly kind: 'subject-guard';
  readonly table: TableName;
  readonly key: string;
  readonly max: number;
  readonly lookups: readonly (readonly string[])[];
  /** Preserve rules of the subject table: a matched row they keep stops the run. */
  readonly preserved: readonly PreserveCondition[];
}

export interface SetTableNode {
  readonly kind: 'set-table';
  readonly name: string;
  readonly table: TableName;
  readonly key: readonly string[];
  readonly where: AuthorSql;
  readonly description?: string;
  readonly first: boolean;
}

export interface SetFillNode {
  readonly kind: 'set-fill';
  readonly name: string;
  readonly table: TableName;
  readonly key: readonly string[];
  readonly where: AuthorSql;
  readonly source: SourcePath;
}

export interface ExpectNode {
  readonly kind: 'expect';
  /** 1-based, in the policy's order. */
  readonly expect: number;
  readonly name: string;
  readonly policyKind: PolicyKind;
  readonly when: 'before' | 'after';
  readonly equals?: number;
  readonly min?: number;
  readonly max?: number;
  readonly query: AuthorSql;
  readonly flag?: string;
  /** It describes a database the dry run never produces (an after-phase check). */
  readonly afterSteps: boolean;
  readonly source: SourcePath;
}

export interface PreserveNode {
  readonly kind: 'preserve';
  readonly rule: number;
  readonly table: TableName;
  readonly condition: PreserveCondition;
  readonly description?: string;
  /**
   * Its rows are counted (a step cascades into the table); otherwise the table's changes so far
   * are noted, to compare after the steps.
   */
  readonly counted: boolean;
  readonly source: SourcePath;
}

export interface PreserveCheckNode {
  readonly kind: 'preserve-check';
  readonly rule: number;
  readonly table: TableName;
  readonly condition: PreserveCondition;
  readonly counted: boolean;
  /** An update step (anonymize, detach) changes the table: its updated rows are expected too. */
  readonly updatedBySteps?: true;
}

export interface StepNode {
  readonly kind: 'step';
  /** 1-based, of `count`. */
  readonly step: number;
  readonly count: number;
  readonly table: TableName;
  /** Absent: every row (all_rows: true). */
  readonly where?: AuthorSql;
  /** Preserve rules of the step's table: their rows are kept out of the DELETE. */
  readonly keep: readonly PreserveCondition[];
  readonly optional: boolean;
  readonly flag?: string;
  readonly maxRows?: number;
  readonly cascades: readonly TableName[];
  readonly description?: string;
  readonly source: SourcePath;
  /** Batched cleanup (src/run/batched.ts): purgekit apply deletes it batch by batch. */
  readonly batch?: BatchSpec;
}

/*
 * Batched cleanup (issue 11, item 3). A batched step is deleted by purgekit apply in keyset
 * order of its table's primary key, one short transaction per batch. The key is the database's,
 * read at run time: the runner fills in `keyset` before it prints the batch's statement
 * (print/batch.ts); compile never sets it.
 */
export interface BatchSpec {
  /** Rows per batch; with maxBatchMs the first batch's. */
  readonly rows?: number;
  /** Time target per batch transaction: the rows per batch adapt toward it. */
  readonly maxBatchMs?: number;
  /** Where the policy declares it (['steps', i, 'batch']), for located errors at run time. */
  readonly source: SourcePath;
  readonly keyset?: Keyset;
}

export interface Keyset {
  /** The primary key's columns, in index order, with their types (format_type). */
  readonly columns: readonly { readonly name: string; readonly type: string }[];
  /** The batch starts after the last key committed (purgekit_params.batch_after), else at the first key. */
  readonly after: boolean;
  /** A plain table (not partitioned): rows are deleted by tuple id, found in the same transaction. */
  readonly tid: boolean;
}

/**
 * First statement after BEGIN of a file with batched steps: it raises at once, so the file is
 * for review and for purgekit apply only (docs/FORMATS.md); the runner never sends it.
 */
export interface ApplyOnlyNode {
  readonly kind: 'apply-only';
  readonly policy: string;
  readonly steps: readonly number[];
}

/**
 * A step that keeps its rows and overwrites columns (anonymize:, detach:): one UPDATE, counted
 * and reported like a step's DELETE ('updated'), under the same where, flag, preserve
 * exclusions and max_rows. Numbered among the steps (its report item is `step <n>`).
 */
export interface UpdateNode extends Omit<StepNode, 'kind'> {
  readonly kind: 'update';
  readonly mode: 'anonymize' | 'detach';
  readonly set: readonly { readonly column: string; readonly value: UpdateValue }[];
}

/** A column's new value, author SQL resolved; redact and hash are printed by print/update.ts. */
export type UpdateValue =
  | { readonly kind: 'null' }
  | { readonly kind: 'default' }
  | { readonly kind: 'constant'; readonly literal: string }
  | { readonly kind: 'expression'; readonly sql: AuthorSql }
  | { readonly kind: 'redact' }
  | { readonly kind: 'hash'; readonly key: string };

/** A delete step or an update step: what the runner locks, backs up and reports per step. */
export type AnyStepNode = StepNode | UpdateNode;

export interface WipeReachTableNode {
  readonly kind: 'wipe-reach-table';
  readonly cascade: boolean;
  readonly keep: readonly TableName[];
}

export interface WipeReachNode {
  readonly kind: 'wipe-reach';
  readonly tables: readonly TableName[];
  readonly cascade: boolean;
  readonly keep: readonly TableName[];
}

export interface WipeNode {
  readonly kind: 'wipe';
  readonly tables: readonly TableName[];
  readonly cascade: boolean;
  readonly restartIdentity: boolean;
}

/** What each row of the report table is about. The `item` column holds its label. */
export type ReportItem =
  | { readonly kind: 'subject' }
  | { readonly kind: 'step'; readonly step: number }
  | { readonly kind: 'preserve'; readonly rule: number }
  | { readonly kind: 'keep' }
  | { readonly kind: 'expect'; readonly expect: number }
  | { readonly kind: 'wipe' };

export function itemLabel(item: ReportItem): string {
  switch (item.kind) {
    case 'subject':
    case 'keep':
    case 'wipe':
      return item.kind;
    case 'step':
      return `step ${item.step}`;
    case 'preserve':
      return `preserve ${item.rule}`;
    case 'expect':
      return `expect ${item.expect}`;
  }
}

/** The SQLSTATEs the script raises (class PK) live with the errors they map to. */
export { GuardCode } from '../core/errors.js';
