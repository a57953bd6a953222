/**
 * `purgekit ledger check`: which subjects present in the database the ledger says were erased.
 * The subject table's key columns are read once, in text form, as `COPY (SELECT ...) TO STDOUT`
 * (the cost of one read of the column: no row objects, no round trip per batch; never whole
 * into memory), in one read-only transaction; each key's digest is looked up in the ledger's
 * erased subjects, read once before the scan.
 */
import type postgres from 'postgres';
import { UsageError } from '../core/errors.js';
import { subjectDigest, type LedgerKey } from './key.js';
import { keyText } from './record.js';
import { erasedSubjects, ledgerExists, otherKeys } from './table.js';

export interface FoundSubject {
  /** The ledger's digest of the subject. */
  readonly subject: string;
  /** The key values in text form: kept for replay, printed only with --show-keys. */
  readonly key: readonly string[];
  /** The policy whose apply erased it last, and when. */
  readonly erasedBy: string;
  readonly erasedAt: string;
}

export interface CheckResult {
  /** Rows of the subject table read. */
  readonly scanned: number;
  /** Subjects of this table whose latest ledger entry under this key is an erasure (since --since). */
  readonly erased: number;
  readonly found: readonly FoundSubject[];
  /** Ledger rows of this table written under another key: not comparable with this one. */
  readonly otherKeys: readonly { readonly keyId: string; readonly rows: number }[];
}


export async function checkLedger(sql: postgres.Sql, subjectTable: string, keyColumns: readonly string[], key: LedgerKey, since?: Date): Promise<CheckResult> {
  if (!(await ledgerExists(sql))) throw new UsageError('this database has no erasure ledger (purgekit.ledger): nothing was ever recorded here (purgekit ledger init creates it; every apply with PURGEKIT_LEDGER_KEY set writes it)');
  return sql.begin('isolation level repeatable read read only', async (tx) => {
    const erased = await erasedSubjects(tx, subjectTable, key.id, since);
    const others = await otherKeys(tx, subjectTable, key.id);
    const found: FoundSubject[] = [];
    let scanned = 0;
    if (erased.size) {
      const source = await tx.unsafe(`COPY (SELECT ${keyText(keyColumns)} FROM ${subjectTable}) TO STDOUT`).readable();
      // Consumed synchronously as chunks arrive, never paused: postgres.js 3.4.x can leave its
      // socket paused when a COPY ends over the high-water mark (porsager/postgres#499; see
      // src/run/backup.ts), and the COMMIT after it would never return.
      let rest: Buffer = Buffer.alloc(0);
      const row = (line: Buffer) => {
        scanned++;
        const values = copyFields(line.toString('utf8'));
        if (values.some((v) => v === null)) return;
        const digest = subjectDigest(key, subjectTable, values as string[]);
        const hit = erased.get(digest);
        if (hit) found.push({ subject: digest, key: values as string[], erasedBy: hit.policy, erasedAt: hit.erasedAt.toISOString() });
      };
      await new Promise<void>((resolve, reject) => {
        source.on('data', (chunk: Buffer) => {
          const data = rest.length ? Buffer.concat([rest, chunk]) : chunk;
          let start = 0;
          for (let at = data.indexOf(0x0a); at !== -1; at = data.indexOf(0x0a, start)) {
            row(data.subarray(start, at));
            start = at + 1;
          }
          rest = Buffer.from(data.subarray(start));
        });
        source.on('end', () => resolve());
        source.on('error', reject);
      });
    }
    return { scanned, erased: erased.size, found, otherKeys: others };
  });
}

const ESCAPES: Readonly<Record<string, string>> = { b: '\b', f: '\f', n: '\n', r: '\r', t: '\t', v: '\v', '\\': '\\' };

/**
 * One line of COPY text format as COPY TO writes it: its fields, tab-separated, backslash
 * escapes decoded (COPY TO writes \b \f \n \r \t \v and \\, never octal or hex), \N as null.
 */
export function copyFields(line: string): (string | null)[] {
  return line.split('\t').map((field) =>
    field === '\\N'
      ? null
      : field.includes('\\')
        ? field.replace(/\\(.)/g, (_, e: string) => ESCAPES[e] ?? e)
        : field,
  );
}

/** --since: an ISO 8601 date or time (a date alone is midnight UTC), or an age such as 7d, 12h, 30min. */
export function parseSince(text: string, now = new Date()): Date {
  const age = /^(\d+)\s*(d|h|min)$/.exec(text.trim());
  if (age) return new Date(now.getTime() - Number(age[1]) * { d: 86_400_000, h: 3_600_000, min: 60_000 }[age[2] as 'd']);
  const iso = /^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}(:?\d{2})?)?)?$/.test(text.trim());
  const date = new Date(/^\d{4}-\d{2}-\d{2}$/.test(text.trim()) ? `${text.trim()}T00:00:00Z` : text.trim());
  if (!iso || Number.isNaN(date.getTime())) throw new UsageError(`--since ${JSON.stringify(text)}: expected an ISO 8601 date or time (2026-11-25, 2026-11-25T08:00:00Z) or an age (7d, 12h, 30min)`);
  return date;
}
