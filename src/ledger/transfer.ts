/**
 * `purgekit ledger export` / `import`: the ledger as JSON lines (one row a line, as
 * row_to_json writes it: times with their microseconds), so that it outlives the database it is
 * kept in. A dump restored over the database brings back the ledger of the dump's day, without
 * the erasures since: export before restoring (or keep exports), import afterwards; import adds
 * the rows the ledger lacks (by id) and leaves the others as they are. Rows hold HMACs only:
 * an export can be kept where backups are not.
 */
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import type postgres from 'postgres';
import { UsageError } from '../core/errors.js';
import { subjectsPath } from '../volume/subjects.js';
import { createLedger, ledgerExists } from './table.js';

const BATCH = 1000;

export async function exportLedger(sql: postgres.Sql, write: (line: string) => void): Promise<number> {
  if (!(await ledgerExists(sql))) throw new UsageError('this database has no erasure ledger (purgekit.ledger) to export');
  let n = 0;
  await sql.begin('isolation level repeatable read read only', async (tx) => {
    await tx`SELECT row_to_json(l)::text AS line FROM purgekit.ledger l ORDER BY recorded_at, id`.cursor(BATCH, (rows) => {
      for (const r of rows) write(String(r['line']));
      n += rows.length;
    });
  });
  return n;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const DIGEST = /^hmac-sha256:[0-9a-f]{64}$/;

/** The problem of one exported line, or undefined. */
function problem(row: unknown): string | undefined {
  if (typeof row !== 'object' || row === null || Array.isArray(row)) return 'not a JSON object';
  const r = row as Record<string, unknown>;
  if (typeof r['id'] !== 'string' || !UUID.test(r['id'])) return 'id: expected a uuid';
  if (r['entry'] !== 'erased' && r['entry'] !== 'restored') return 'entry: expected "erased" or "restored"';
  if (typeof r['subject'] !== 'string' || !DIGEST.test(r['subject'])) return 'subject: expected hmac-sha256:<64 hex digits> (a ledger holds no key value in clear)';
  for (const k of ['subject_table', 'key_id', 'policy', 'plan_sha256', 'recorded_at']) if (typeof r[k] !== 'string' || r[k] === '') return `${k}: expected a string`;
  if (!Array.isArray(r['key_columns']) || !r['key_columns'].every((c) => typeof c === 'string')) return 'key_columns: expected an array of column names';
  return undefined;
}

async function* linesOf(path: string, label: string): AsyncGenerator<{ line: number; text: string }> {
  let line = 0;
  try {
    for await (const text of createInterface({ input: createReadStream(path), crlfDelay: Infinity })) {
      line++;
      if (text.trim() !== '') yield { line, text };
    }
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new UsageError(`ledger import ${label}: no such file`);
    throw e;
  }
}

/**
 * Reads the file twice (standard input is spooled to a temporary file first): every line is
 * checked before anything is written; then the rows go in, in one transaction.
 */
export async function importLedger(sql: postgres.Sql, given: string): Promise<{ read: number; added: number }> {
  const { path, label } = await subjectsPath(given);
  const problems: string[] = [];
  for await (const { line, text } of linesOf(path, label)) {
    let row: unknown;
    try {
      row = JSON.parse(text);
    } catch (e) {
      problems.push(`${label}:${line}: not JSON: ${(e as Error).message}`);
      continue;
    }
    const p = problem(row);
    if (p) problems.push(`${label}:${line}: ${p}`);
  }
  if (problems.length) throw new UsageError(`${problems.slice(0, 20).join('\n')}${problems.length > 20 ? `\n(${problems.length - 20} more problems)` : ''}\nnothing was imported`);
  if (!(await ledgerExists(sql))) await createLedger(sql);
  let read = 0;
  let added = 0;
  await sql.begin(async (tx) => {
    const insert = async (batch: string[]) => {
      const result = await tx`
        INSERT INTO purgekit.ledger
        SELECT (jsonb_populate_record(NULL::purgekit.ledger, j::jsonb)).* FROM unnest(${batch}::text[]) AS j
        ON CONFLICT (id) DO NOTHING`;
      added += result.count;
    };
    let batch: string[] = [];
    for await (const { text } of linesOf(path, label)) {
      read++;
      batch.push(text);
      if (batch.length === BATCH) {
        await insert(batch);
        batch = [];
      }
    }
    if (batch.length) await insert(batch);
  });
  return { read, added };
}
