/**
 * A validated policy. Only validate() produces one; everything after it (compile, render, run)
 * may trust these fields. SQL fragments written by the author have been parsed: a SqlFragment
 * is exactly one expression (or one SELECT for queries), with its :name references resolved.
 */
import type { AfterCommitAction } from './outbox/spec.js';

export type PolicyKind = 'purge' | 'cleanup' | 'wipe' | 'check';

export const PARAM_TYPES = ['text', 'integer', 'bigint', 'numeric', 'uuid', 'boolean', 'date', 'timestamptz'] as const;
export type ParamType = (typeof PARAM_TYPES)[number];

export interface ParamDecl {
  readonly name: string;
  readonly type: ParamType;
  readonly normalize?: 'lower' | 'upper' | 'trim';
  readonly description?: string;
  /** The value identifies a person; logs carry a hash of it, never the value. */
  readonly personal: boolean;
}

export interface FlagDecl {
  readonly name: string;
  readonly default: boolean;
  readonly description?: string;
}

/** A piece of SQL the author wrote, split at its :name references. */
export interface SqlFragment {
  /** The text as written in the policy. */
  readonly text: string;
  /** Text and references in order: a reference is `:subject`, `:<param>` or `:<flag>`. */
  readonly parts: readonly (string | { readonly ref: string })[];
  /** The functions it calls, as written (set by validation): the run-time check looks them up. */
  readonly functions?: readonly FunctionName[];
}

/** A function called by author SQL: its name, and its schema when the call is qualified. */
export interface FunctionName {
  readonly schema?: string;
  readonly name: string;
}

export interface TableName {
  readonly schema: string;
  readonly name: string;
}

export interface Lookup {
  readonly by: readonly string[];
  readonly where: SqlFragment;
}

export interface Subject {
  readonly table: TableName;
  readonly key: string;
  readonly lookup: readonly Lookup[];
  readonly max: number;
  /** Columns of the subject table whose values identify the person (subject.identifiers): what `residue` searches for. */
  readonly identifiers: readonly string[];
  /** subject.capture: columns of the subject row captured before the deletes, for after_commit's {subject.<column>}. */
  readonly capture: readonly string[];
  /** subject.display: the column shown for a matched subject and typed to confirm it (guard.confirm: subject). */
  readonly display?: string;
  /** subject.search: columns apply searches at a terminal when no lookup parameter is given (src/interactive). */
  readonly search?: readonly string[];
}

/**
 * A named key set (sets: in the policy): the `key` values of the `table` rows its where selects,
 * captured before any step runs, in the order declared (a set may read :subject and earlier
 * sets), and locked FOR UPDATE like the subject. `:<name>` in any later SQL reads it, like
 * :subject. It names a table's removed keys once, so that later steps read the set instead of
 * repeating the path, and it remembers what rows pointed at before they go (the rows a step
 * deletes afterwards, once nothing else references them).
 */
export interface KeySet {
  readonly name: string;
  readonly table: TableName;
  readonly key: readonly string[];
  readonly where: SqlFragment;
  readonly description?: string;
}

export interface Step {
  readonly table: TableName;
  /** Absent when the step deletes every row (all_rows: true). */
  readonly where?: SqlFragment;
  readonly optional: boolean;
  readonly if?: string;
  readonly maxRows?: number;
  readonly description?: string;
  readonly cascades: readonly TableName[];
  /** cleanup: deleted in batches by purgekit apply (src/run/batched.ts). */
  readonly batch?: StepBatch;
  /** anonymize: or detach: the step keeps its rows and overwrites columns (an UPDATE, not a DELETE). */
  readonly update?: StepUpdate;
}

/** A step's batch: rows per batch, a time target per batch transaction, or both (docs/POLICY.md). */
export interface StepBatch {
  readonly rows?: number;
  readonly maxBatchMs?: number;
}

/** A step that keeps its rows: anonymize: (any columns) or detach: (foreign-key columns). */
export interface StepUpdate {
  readonly mode: 'anonymize' | 'detach';
  /** In the order written; each column once. */
  readonly set: readonly ColumnUpdate[];
}

export interface ColumnUpdate {
  readonly column: string;
  readonly value: NewValue;
}

/**
 * A column's new value: NULL, its DEFAULT, a constant (an SQL literal, already quoted), the
 * author's expression over the row, or a built-in masker (redact keeps the format: letters x,
 * digits 0; hash is a keyed sha256 whose key is the text param `key`, given at run time).
 */
export type NewValue =
  | { readonly kind: 'null' }
  | { readonly kind: 'default' }
  | { readonly kind: 'constant'; readonly literal: string }
  | { readonly kind: 'expression'; readonly sql: SqlFragment }
  | { readonly kind: 'redact' }
  | { readonly kind: 'hash'; readonly key: string };

export interface Preserve {
  readonly table: TableName;
  readonly where: SqlFragment;
  /** The rule applies only when this flag is set. */
  readonly if?: string;
  readonly description?: string;
}

export interface Wipe {
  readonly tables: readonly TableName[];
  /** Unlisted tables the cascade is expected to empty too (reviewed): lint accepts them. */
  readonly reach: readonly TableName[];
  readonly restartIdentity: boolean;
  readonly cascade: boolean;
}

export interface Expectation {
  readonly name: string;
  readonly query: SqlFragment;
  readonly min?: number;
  readonly max?: number;
  readonly equals?: number;
  readonly when: 'before' | 'after';
  /** Checked only when this flag is set; otherwise reported as skipped. */
  readonly if?: string;
}

export interface Guard {
  readonly databases?: readonly string[];
  readonly confirm?: 'database';
  /** guard.confirm names subject: apply needs the subject.display value of every matched subject, typed or --confirm-subject. */
  readonly confirmSubject?: true;
}

export interface Policy {
  readonly version: 1;
  readonly name: string;
  readonly kind: PolicyKind;
  readonly description?: string;
  readonly schema: string;
  readonly params: readonly ParamDecl[];
  readonly flags: readonly FlagDecl[];
  readonly subject?: Subject;
  /** Named key sets, in the order they are captured. */
  readonly sets: readonly KeySet[];
  readonly steps: readonly Step[];
  readonly preserve: readonly Preserve[];
  readonly wipe?: Wipe;
  readonly keep: readonly TableName[];
  readonly expect: readonly Expectation[];
  readonly guard: Guard;
  /** 'required': apply refuses to run without --backup. */
  readonly backup?: 'required';
  /** allow_functions: functions the author vouches for, called although volatile (`name` or `schema.name`). */
  readonly allowFunctions?: readonly string[];
  /** after_commit: side effects queued in purgekit.outbox inside the transaction, run after COMMIT (src/outbox). */
  readonly afterCommit: readonly AfterCommitAction[];
  readonly source: { readonly path: string; readonly sha256: string };
}
