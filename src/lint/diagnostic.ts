import { oneLine } from '../core/names.js';
import { locate, type LoadedFile, type PathSegment } from '../load/loadPolicy.js';

/**
 * A lint finding, located at the policy's YAML (file:line:col) like every purgekit diagnostic,
 * with a rule code and a severity. Errors fail `purgekit lint`; warnings only with --strict.
 */
export type Severity = 'error' | 'warning';

export interface LintDiagnostic {
  readonly file: string;
  readonly line: number;
  readonly col: number;
  readonly rule: RuleCode;
  readonly severity: Severity;
  /** One line: editors and CI parse diagnostics line by line. */
  readonly message: string;
}

/** The rules, documented in docs/LINT.md. Codes are stable: never renumber one. */
export const RULES = {
  'PK-L001': { name: 'missing-table', severity: 'error' },
  'PK-L002': { name: 'missing-column', severity: 'error' },
  'PK-L003': { name: 'parent-before-child', severity: 'error' },
  'PK-L004': { name: 'coverage-gap', severity: 'error' },
  'PK-L005': { name: 'key-without-foreign-key', severity: 'warning' },
  'PK-L006': { name: 'unindexed-foreign-key', severity: 'warning' },
  'PK-L007': { name: 'wipe-reaches-keep', severity: 'error' },
  'PK-L008': { name: 'wipe-reaches-unlisted', severity: 'warning' },
  'PK-L009': { name: 'wipe-restrict-blocked', severity: 'error' },
  'PK-L010': { name: 'sql-does-not-plan', severity: 'error' },
  'PK-L011': { name: 'undeclared-cascade', severity: 'warning' },
  'PK-L012': { name: 'volatile-function', severity: 'error' },
  // anonymize:/detach: steps (src/lint/updateRules.ts)
  'PK-L013': { name: 'update-column', severity: 'error' },
} as const satisfies Record<string, { name: string; severity: Severity }>;

export type RuleCode = keyof typeof RULES;

/** A diagnostic of `rule` at a YAML path of the policy file (its default severity unless given). */
export function diagnostic(file: LoadedFile, path: readonly PathSegment[], rule: RuleCode, message: string, severity: Severity = RULES[rule].severity): LintDiagnostic {
  const { line, col } = locate(file, path);
  return { file: file.path, line, col, rule, severity, message: oneLine(message) };
}

export function byPosition(a: LintDiagnostic, b: LintDiagnostic): number {
  return cmp(a.file, b.file) || a.line - b.line || a.col - b.col || cmp(a.rule, b.rule) || cmp(a.message, b.message);
}

/** Code-unit order: the same on every machine, whatever its locale. */
function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
