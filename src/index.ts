/**
 * purgekit as a library: the pipeline load -> validate -> compile -> render, one function each.
 * Only loading and the file writer (commands/compile) touch the disk.
 */
export { loadPolicyFile, parsePolicyText, type LoadedFile } from './load/loadPolicy.js';
export { findPolicyFiles } from './load/findPolicyFiles.js';
export { validatePolicy, type Validated } from './validate/validatePolicy.js';
export { validateFiles, type ValidatedFiles } from './validate/validateFiles.js';
export { compile } from './plan/compile.js';
export { GuardCode, itemLabel, type Plan, type PlanNode, type NodeKind, type ReportItem } from './plan/nodes.js';
export { fileStatement, applyStatement, dryRunStatement, probeStatement, type Probe } from './plan/print/index.js';
export { render, checksumOf, type RenderOptions } from './render/render.js';
export { generate, compileCommand, checkCommand } from './commands/compile.js';
export { renderCommand } from './commands/render.js';
export { resolvePolicy } from './commands/resolvePolicy.js';
export { collectValues, renderValues, type RunValues } from './values.js';
export { quoteIdent, quoteLiteral } from './sql/quote.js';
export { loadParser } from './sql/parser.js';
export type * from './policy.js';
export {
  PurgekitError, UsageError, InvalidPolicyError, UnrenderableValueError, LiteralError, DriftError, StalePlanError, RefusedError,
  RestoreRefused, ConnectionError, BackupError, AuditLogError, Rollback,
  DatabaseError, GuardError, LockTimeoutError, StatementTimeoutError, CancelledError, DeadlockError, SerializationError,
  ConnectionLostError, IntegrityError, databaseError, failureKind, guardOf, guardExitCode, SqlState, TRANSIENT_KINDS,
  ExitCode, formatDiagnostic, type Diagnostic, type FailureKind, type GuardName,
} from './core/errors.js';
export { runCommand, type RunOptions } from './commands/run.js';
export { restoreCommand } from './commands/restore.js';
export { countsCommand } from './commands/counts.js';
export { lintCommand } from './commands/lint.js';
export { readCatalog, readForeignKeys, type Catalog, type Table, type ForeignKey } from './catalog/catalog.js';
export { dependents, referencing, cycles, type Graph, type Edge, type Reached, type Cycle } from './graph/graph.js';
export { deleteReach, cascadeTargets, type DeleteReach } from './graph/delete.js';
export { truncateReach } from './graph/truncate.js';
export { resolveTable, type Resolution } from './graph/resolve.js';
export { discover } from './discover/discover.js';
export { discoverCommand } from './commands/discover.js';
