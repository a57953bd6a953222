import type { LintDiagnostic } from './diagnostic.js';

/**
 * How `purgekit lint` prints its diagnostics on stdout (docs/LINT.md):
 *   text  file:line:col: severity rule: message, then one summary line, for people
 *   json  one document: { version, policies, errors, warnings, diagnostics: [...] }
 *   gcc   file:line:col: severity: message [rule], the format editors' problem matchers and CI parse
 */
export const REPORTERS = ['text', 'json', 'gcc'] as const;
export type ReporterName = (typeof REPORTERS)[number];

export interface LintSummary {
  /** Policies linted. */
  readonly policies: number;
}

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
  const lines = diagnostics.map((d) => `${d.file}:${d.line}:${d.col}: ${d.severity} ${d.rule}: ${d.message}`);
  const { errors, warnings } = count(diagnostics);
  const policies = plural(summary.policies, 'policy', 'policies');
  const found = [errors && plural(errors, 'error'), warnings && plural(warnings, 'warning')].filter(Boolean).join(' and ');
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

function plural(n: number, word: string, words = `${word}s`): string {
  return `${n} ${n === 1 ? word : words}`;
}
