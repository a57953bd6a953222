/**
 * purgekit ledger init | check | replay (docs/LEDGER.md): the erasure ledger of a database.
 */
import { ExitCode, UsageError } from '../core/errors.js';
import { kebab, qualified } from '../core/names.js';
import { didYouMean } from '../validate/didYouMean.js';
import { connect, connected, currentDatabase, redact } from '../db/connect.js';
import { checkLedger, parseSince, type CheckResult } from '../ledger/check.js';
import { LEDGER_KEY_ENV, requireLedgerKey } from '../ledger/key.js';
import { keyLookupParam, subjectsFile } from '../ledger/replay.js';
import { createLedger, ledgerExists } from '../ledger/table.js';
import { exportLedger, importLedger } from '../ledger/transfer.js';
import type { Policy } from '../policy.js';
import { runSubjects, type VolumeOptions, type VolumeSummary } from '../volume/batches.js';
import { resolvePolicy } from './resolvePolicy.js';

export interface LedgerInitOptions {
  readonly connection?: string;
  readonly say: (line: string) => void;
}

export async function ledgerInit(options: LedgerInitOptions): Promise<{ created: boolean }> {
  const conn = connect(options.connection);
  try {
    return await connected(conn, async (sql) => {
      if (await ledgerExists(sql)) return { created: false };
      await createLedger(sql);
      return { created: true };
    });
  } finally {
    await conn.sql.end({ timeout: 5 });
  }
}

/** ledger export: every row as a JSON line on `write`; ledger import <file>: the rows the ledger lacks. */
export async function ledgerTransfer(options: LedgerInitOptions & ({ readonly action: 'export'; readonly write: (line: string) => void } | { readonly action: 'import'; readonly file: string })): Promise<{ rows: number; added?: number }> {
  const conn = connect(options.connection);
  try {
    return await connected(conn, async (sql) => {
      if (options.action === 'export') return { rows: await exportLedger(sql, options.write) };
      const { read, added } = await importLedger(sql, options.file);
      return { rows: read, added };
    });
  } finally {
    await conn.sql.end({ timeout: 5 });
  }
}

export interface LedgerCheckOptions {
  readonly target: string;
  readonly policiesDir: string;
  readonly connection?: string;
  readonly since?: string;
  readonly say: (line: string) => void;
}

export interface LedgerCheckOutput {
  readonly version: 1;
  readonly command: 'ledger check';
  readonly policy: string;
  readonly database: string;
  readonly subjectTable: string;
  readonly keyColumns: readonly string[];
  readonly keyId: string;
  readonly since: string | null;
  readonly scanned: number;
  readonly erased: number;
  /** Present in the database, erased according to the ledger. `key` only with --show-keys. */
  readonly found: readonly { readonly subject: string; readonly erasedBy: string; readonly erasedAt: string; readonly key?: readonly string[] }[];
  readonly otherKeys: CheckResult['otherKeys'];
  readonly exitCode: number;
  readonly durationMs: number;
}

/** What check and replay both start with: a purge policy, the key, a parsed --since. */
async function prepare(options: LedgerCheckOptions, command: string) {
  if (options.since !== undefined && options.since.trim() === '') throw new UsageError('--since: expected a date, a time or an age (7d)');
  const since = options.since === undefined ? undefined : parseSince(options.since);
  const { policy } = await resolvePolicy(options.target, options.policiesDir);
  if (policy.kind !== 'purge' || !policy.subject) throw new UsageError(`${policy.name} is a ${policy.kind} policy: the erasure ledger records purge policies (subjects with a key)`);
  const key = requireLedgerKey(process.env, `ledger ${command} ${policy.name} compares the subjects' keys with the ledger's HMACs`);
  return { policy, key, since };
}

export async function ledgerCheck(options: LedgerCheckOptions & { readonly showKeys?: boolean }): Promise<{ output: LedgerCheckOutput; found: CheckResult['found']; policy: Policy }> {
  const started = Date.now();
  const { policy, key, since } = await prepare(options, 'check');
  const subjectTable = qualified(policy.subject!.table);
  const keyColumns = [policy.subject!.key];
  const conn = connect(options.connection);
  const say = (line: string) => options.say(redact(line, conn.secrets));
  try {
    const database = await currentDatabase(conn);
    say(`purgekit ledger check ${policy.name}: ${subjectTable} (${keyColumns.join(', ')}) against purgekit.ledger in ${database}${since ? `, erasures since ${since.toISOString()}` : ''}`);
    const result = await checkLedger(conn.sql, subjectTable, keyColumns, key, since);
    for (const o of result.otherKeys) say(`note: ${o.rows} ledger rows of ${subjectTable} were written under another ${LEDGER_KEY_ENV} (key id ${o.keyId}; this one is ${key.id}): check them with that key (docs/LEDGER.md: key rotation)`);
    const output: LedgerCheckOutput = {
      version: 1,
      command: 'ledger check',
      policy: policy.name,
      database,
      subjectTable,
      keyColumns,
      keyId: key.id,
      since: since?.toISOString() ?? null,
      scanned: result.scanned,
      erased: result.erased,
      found: result.found.map((f) => ({ subject: f.subject, erasedBy: f.erasedBy, erasedAt: f.erasedAt, ...(options.showKeys ? { key: f.key } : {}) })),
      otherKeys: result.otherKeys,
      exitCode: result.found.length ? ExitCode.ledgerFound : ExitCode.ok,
      durationMs: Date.now() - started,
    };
    return { output, found: result.found, policy };
  } finally {
    await conn.sql.end({ timeout: 5 });
  }
}

/** Text for people: one line per subject found, and a verdict. */
export function humanCheck(output: LedgerCheckOutput): string[] {
  const lines = output.found.map((f) => `  ${f.key ? `${output.keyColumns.join(', ')} = ${f.key.join(', ')}  ` : ''}${f.subject.slice(0, 24)}...  erased by ${f.erasedBy} at ${f.erasedAt}`);
  const n = output.found.length;
  lines.push(
    n
      ? `${n} erased ${n === 1 ? 'subject is' : 'subjects are'} in ${output.subjectTable} again (read ${output.scanned} rows; ${output.erased} erased in the ledger): purgekit ledger replay ${output.policy} --confirm ${output.database} erases ${n === 1 ? 'it' : 'them'} again (exit ${ExitCode.ledgerFound})`
      : `no erased subject is in ${output.subjectTable} (read ${output.scanned} rows; ${output.erased} erased in the ledger)`,
  );
  return lines;
}

export type LedgerReplayOptions = Omit<VolumeOptions, 'subjectsFrom' | 'resume' | 'target' | 'values' | 'pairs'> & {
  readonly target: string;
  readonly since?: string;
  /** The policy's flags to set (--flag name): the ledger records subjects, not the flags of their purge. */
  readonly flags: readonly string[];
};

/**
 * Finds the subjects as check does, then purges them through runSubjects (apply, every check of
 * a single run per subject, journal, audit log, retries). Exit: the volume run's worst code.
 */
export async function ledgerReplay(options: LedgerReplayOptions): Promise<{ summary: VolumeSummary | null; exitCode: number }> {
  // The policy must find a subject by its key: said before connecting.
  const { policy } = await prepare({ ...options, say: options.stderr }, 'replay');
  const param = keyLookupParam(policy);
  const values: Record<string, boolean> = {};
  for (const given of options.flags) {
    const name = given.replace(/^--/, '').replaceAll('-', '_');
    if (!policy.flags.some((f) => f.name === name)) {
      const near = didYouMean(name, policy.flags.map((f) => f.name));
      throw new UsageError(`--flag ${given}: ${policy.name} has no such flag${near ? ` (did you mean ${near}?)` : ''} (its flags: ${policy.flags.map((f) => f.name).join(', ') || 'none'})`);
    }
    values[kebab(name)] = true;
  }
  const { found } = await ledgerCheck({ target: options.target, policiesDir: options.policiesDir, ...(options.connection ? { connection: options.connection } : {}), ...(options.since !== undefined ? { since: options.since } : {}), say: options.stderr });
  if (!found.length) {
    options.stderr(`ledger replay ${policy.name}: no erased subject is in the database: nothing to do`);
    return { summary: null, exitCode: ExitCode.ok };
  }
  options.stderr(`ledger replay ${policy.name}: ${found.length} erased ${found.length === 1 ? 'subject is' : 'subjects are'} back: purging again by ${param}`);
  const file = subjectsFile(param, found);
  try {
    return await runSubjects('apply', { ...options, target: options.target, values, pairs: [], subjectsFrom: file.path, resume: false });
  } finally {
    file.remove();
  }
}
