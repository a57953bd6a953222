import { ExitCode, UsageError } from '../core/errors.js';
import { auditDigest, removedTables, reportParts } from '../residue/build.js';
import { searchableTables } from '../residue/columns.js';
import { humanResidue, type ResidueOutput } from '../residue/report.js';
import { scanTables } from '../residue/scan.js';
import { checkSchemas, selectTables } from '../residue/select.js';
import { identifyingValues, parseValuePairs } from '../residue/values.js';
import { connect, currentDatabase, redact } from '../db/connect.js';
import { collectValues } from '../values.js';
import { resolvePolicy } from './resolvePolicy.js';

/**
 * purgekit residue <purge policy>: where the subject's identifying values still appear outside
 * the rows the policy removes (docs/RESIDUE.md). Read-only. Exit 0: scanned everything, found
 * nothing; 4: a finding, or a table or column that could not be scanned (absence unproven).
 */
export interface ResidueOptions {
  readonly target: string;
  readonly policiesDir: string;
  readonly values: Readonly<Record<string, unknown>>;
  readonly pairs: readonly string[];
  readonly escapedPairs?: readonly string[];
  /** --value name=value */
  readonly valuePairs: readonly string[];
  readonly connection?: string;
  readonly schemas?: readonly string[];
  readonly include: readonly string[];
  readonly exclude: readonly string[];
  readonly estimate: boolean;
  readonly maxSeconds?: number;
  /** Primary keys shown per finding. */
  readonly keys: number;
  /** Search values as substrings of text and JSON strings (default true). */
  readonly substring: boolean;
  /** The audit log whose key (<log>.key) gives each value's HMAC, when it exists. */
  readonly auditLog: string;
  readonly stderr: (line: string) => void;
}

export async function residueCommand(options: ResidueOptions): Promise<{ output: ResidueOutput; lines: string[]; exitCode: number }> {
  if (options.maxSeconds !== undefined && !(options.maxSeconds >= 0)) throw new UsageError('--max-seconds: expected a number of seconds (0 or more)');
  if (!Number.isInteger(options.keys) || options.keys < 0) throw new UsageError('--keys: expected a whole number (0 or more)');
  const { policy } = await resolvePolicy(options.target, options.policiesDir);
  if (policy.kind !== 'purge' || !policy.subject) throw new UsageError(`${policy.name} is a ${policy.kind} policy: residue needs a purge policy (its subject says what identifies a person)`);
  const subject = policy.subject;
  const values = collectValues(policy, options.values, options.pairs, options.escapedPairs);
  const pairs = parseValuePairs(options.valuePairs);
  const lookupGiven = subject.lookup.some((l) => l.by.every((b) => values.params.has(b)));
  if (!lookupGiven && !pairs.length && ![...values.params.keys()].length) {
    throw new UsageError(`${policy.name}: name the person: a lookup's params (${subject.lookup.map((l) => l.by.map((b) => `--${b.replaceAll('_', '-')}`).join(' + ')).join(', or ')}) or --value name=value`);
  }
  const conn = connect(options.connection);
  const say = (line: string) => options.stderr(redact(line, conn.secrets));
  try {
    const database = await currentDatabase(conn);
    if (options.schemas) await checkSchemas(conn.sql, options.schemas);
    const found = await identifyingValues(conn.sql, policy, values, pairs, { substring: options.substring });
    if (!found.values.length) throw new UsageError(`${policy.name}: no identifying value to search for`);
    if (found.subjects === 0) say(`the lookup matched no ${subject.table.name} row: searching for the given values only`);

    const excluded = await removedTables(conn.sql, policy, values);

    const catalog = await searchableTables(conn.sql, options.schemas);
    const selected = (await selectTables(conn.sql, catalog, options)).filter((t) => !excluded.has(t.table));
    say(`purgekit residue ${policy.name}: ${found.values.length} identifying ${found.values.length === 1 ? 'value' : 'values'} (${found.values.map((v) => `${v.name}: ${v.source}`).join(', ')}), ${selected.length} tables to ${options.estimate ? 'estimate' : 'scan'}`);
    const { scans, findings: raw } = await scanTables(conn.sql, selected, found.values, {
      ...(options.maxSeconds !== undefined ? { budgetMs: options.maxSeconds * 1000 } : {}),
      keys: options.keys,
      explainOnly: options.estimate,
      progress: (line) => say(`  ${line}`),
    });

    const parts = reportParts(policy, catalog, { scans, findings: raw }, found.values, excluded, auditDigest(options.auditLog));
    const { findings, complete } = parts;
    const exitCode = options.estimate ? ExitCode.ok : findings.length || !complete ? ExitCode.checkFailed : ExitCode.ok;
    const output: ResidueOutput = {
      version: 1,
      command: 'residue',
      policy: policy.name,
      database,
      estimate: options.estimate,
      lookup: found.lookup,
      subjects: found.subjects,
      ...parts,
      exitCode,
    };
    return { output, lines: humanResidue(output), exitCode };
  } finally {
    await conn.sql.end({ timeout: 5 });
  }
}
