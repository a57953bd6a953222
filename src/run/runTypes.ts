/** The runner's interface: what execute() (execute.ts) is given and what it returns. */
import type postgres from 'postgres';
import type { PlanNode } from '../plan/nodes.js';
import type { ReportRow, TableChange } from './changes.js';
import type { BackupWriter } from './backup.js';
import type { Catalog } from '../catalog/catalog.js';
import type { NodeContext } from './pipeline.js';
import type { FailureKind } from '../core/errors.js';

export type RunMode = 'plan' | 'rehearse' | 'apply' | 'verify';

export interface RunSettings {
  readonly lockTimeout: string;
  readonly statementTimeout: string;
}

export interface StepTiming {
  readonly step: number;
  readonly table: string;
  readonly ms: number;
}

export interface ExecutionResult {
  readonly committed: boolean;
  /**
   * The connection was lost after COMMIT was sent and before its answer: only the server knows
   * whether it committed (txid_status(xid)).
   */
  readonly commitUnknown?: boolean;
  /** apply: the transaction's id, for txid_status() when the answer to COMMIT was lost. */
  readonly xid?: string;
  readonly report: readonly ReportRow[];
  readonly timings: readonly StepTiming[];
  readonly tables: readonly TableChange[];
  /** Set when the run stopped: a guard raised, a check failed, the database refused, the connection went. */
  readonly failure?: RunFailure;
}

export interface RunFailure {
  /**
   * SQLSTATE (PK001...PK011 for the script's guards), RUNNER for the runner's own checks,
   * CONNECTION_LOST, INTERRUPTED (SIGINT/SIGTERM), AUDIT (the attempt record could not be written).
   */
  readonly code: string;
  /** For database and driver errors: what kind of failure (errors.ts failureKind). */
  readonly kind?: FailureKind;
  readonly message: string;
  /** The statement that failed: its heading in the generated file. */
  readonly at?: string;
  /** When it is a statement of the generated file: its plan node (index in plan.nodes), for its line (render.ts renderWithLines). */
  readonly node?: number;
  /** A server error's position (1-based, in characters) in the statement it was sent, and that statement: for the author's file:line:col. */
  readonly position?: number;
  readonly statement?: string;
}

export interface Progress {
  (event: { kind: 'slow'; step: number; table: string; seconds: number }): void;
}

/** What the caller can do to a run under way. */
export interface RunControl {
  /** SIGINT/SIGTERM: cancel the running statement and roll back (ignored once COMMIT is sent). */
  readonly interrupt?: AbortSignal;
  /** Called just before COMMIT is sent: from here an interrupt cannot roll back. */
  readonly commitSent?: () => void;
  /**
   * apply: inside the transaction, after every check held and the backup is on disk, just
   * before COMMIT (the audit log's attempt record). A throw rolls back.
   */
  readonly beforeCommit?: (attempt: { readonly xid: string; readonly report: readonly ReportRow[]; readonly tables: readonly TableChange[] }) => void | Promise<void>;
  /**
   * apply: in the transaction, after beforeCommit, just before COMMIT: writes of purgekit's own
   * (the volume journal, src/volume/journal.ts) that must commit with the run or not at all. A throw rolls back.
   */
  readonly inTransaction?: (tx: postgres.TransactionSql) => Promise<void>;
  /** --batch-size (src/volume/batchLookup.ts): before a node's statement, sends its own; true when they stand in for the node's. */
  readonly beforeNode?: (node: PlanNode, context: NodeContext) => Promise<boolean>;
  /**
   * --residue (src/residue/inRun.ts): in the transaction once the subject is found and its rows
   * locked, before the first delete (it reads the subject's identifying values); and, in plan and
   * rehearse, after every check held, just before the ROLLBACK (the scan). Neither may throw.
   */
  readonly beforeChanges?: (tx: postgres.TransactionSql) => Promise<void>;
  readonly beforeRollback?: (tx: postgres.TransactionSql) => Promise<void>;
  /**
   * Right after the subject guard, before any step: reads of purgekit's own on the resolved,
   * locked subject (guard.confirm: subject, src/run/confirmSubject.ts). A RefusedError rolls
   * back and ends the run as refused (failure code GUARD, exit 6).
   */
  readonly subjectResolved?: (tx: postgres.TransactionSql) => Promise<void>;
}

/** apply --backup: where removed rows go, and the catalog to follow ON DELETE CASCADE with. */
export interface BackupPlan {
  readonly writer: BackupWriter;
  readonly catalog: Catalog;
  /** Called inside the transaction after every check held, just before COMMIT. */
  readonly finish: (tx: postgres.TransactionSql) => Promise<unknown>;
}

