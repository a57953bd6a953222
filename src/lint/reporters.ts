import { plural } from '../core/names.js';
import { RULES, type LintDiagnostic } from './diagnostic.js';

/**
 * How `purgekit lint` prints its diagnostics on stdout (docs/LINT.md):
 *   text  file:line:col: severity rule: message, then one summary line, for people; a rule found
 *         more than GROUP_AFTER times in one file is one line naming how many and where
 *         (--verbose: every finding)
 *   json  one document: { version, policies, errors, warnings, diagnostics: [...] }
 *   gcc   file:line:col: severity: message [rule], the format editors' problem matchers and CI parse
 */
export const REPORTERS = ['text', 'json', 'gcc'] as const;
export type ReporterName = (typeof REPORTERS)[number];

export interface LintSummary {
  /** Policies linted. */
  readonly policies: number;
  /** Text: every finding on its own line, none grouped. */
  readonly verbose?: boolean;
}

/** More findings of one rule in one file than this are grouped by the text reporter. */
export const GROUP_AFTER = 3;

export function report(reporter: ReporterName, diagnostics: readonly LintDiagnostic[], summary: LintSummary): string {
  switch (reporter) {
    case 'text':
      return text(diagnostics, summary);
    case 'json':
      return json(diagnostics, summary);
    case 'gcc':
      return diagnostics.map((d) => `${d.file}:${d.line}:${d.col}: ${d.severity}: ${d.message} [${d.rule}]\n`).join('');
  }
}

function text(diagnostics: readonly LintDiagnostic[], summary: LintSummary): string {
  const lines: string[] = [];
  const printed = new Set<string>();
  for (const d of diagnostics) {
    const same = diagnostics.filter((o) => o.file === d.file && o.rule === d.rule);
    if (summary.verbose || same.length <= GROUP_AFTER) {
      lines.push(`${d.file}:${d.line}:${d.col}: ${d.severity} ${d.rule}: ${d.message}`);
      continue;
    }
    const group = `${d.file}\u0000${d.rule}`;
    if (printed.has(group)) continue;
    printed.add(group);
    // The first in full, so the kind of finding and its fix are plain; the rest by place.
    const at = new Map<string, number>();
    for (const o of same.slice(1)) at.set(`${o.line}:${o.col}`, (at.get(`${o.line}:${o.col}`) ?? 0) + 1);
    const rest = [...at].map(([place, n]) => `${n} at ${place}`).join(', ');
    lines.push(
      `${d.file}:${d.line}:${d.col}: ${d.severity} ${d.rule}: ${same.length} findings of ${RULES[d.rule].name}, grouped; the first: ${d.message} ` +
        `(the others: ${rest}; --verbose or --reporter json lists each)`,
    );
  }
  const { errors, warnings } = count(diagnostics);
  const policies = counted(summary.policies, 'policy', 'policies');
  const found = [errors && counted(errors, 'error'), warnings && counted(warnings, 'warning')].filter(Boolean).join(' and ');
  lines.push(found ? `${found} in ${policies}` : `no problems in ${policies}`);
  return `${lines.join('\n')}\n`;
}

function json(diagnostics: readonly LintDiagnostic[], summary: LintSummary): string {
  const doc = {
    version: 1,
    policies: summary.policies,
    ...count(diagnostics),
    diagnostics: diagnostics.map(({ file, line, col, rule, severity, message }) => ({ file, line, col, rule, severity, message })),
  };
  return `${JSON.stringify(doc, null, 2)}\n`;
}

export function count(diagnostics: readonly LintDiagnostic[]): { errors: number; warnings: number } {
  const errors = diagnostics.filter((d) => d.severity === 'error').length;
  return { errors, warnings: diagnostics.length - errors };
}

function counted(n: number, word: string, words?: string): string {
  return `${n} ${plural(n, word, words)}`;
}
