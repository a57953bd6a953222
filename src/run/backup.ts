import { createHash } from 'node:crypto';
import { closeSync, fstatSync, fsyncSync, openSync, writeSync } from 'node:fs';
import { chmod, open, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type postgres from 'postgres';
import type { Catalog } from '../catalog/catalog.js';
import { BackupError } from '../core/errors.js';
import { ensureDirectory } from './durable.js';
import { cascadeTargets } from '../graph/delete.js';
import { parseQualified } from '../sql/quote.js';

/**
 * A backup of the rows an apply removes: one file per table and step in PostgreSQL's COPY text
 * format (one line a row, tab-separated, readable and loadable), plus manifest.json with the
 * row count and sha256 of every file. Rows are streamed from the server to disk, never held in
 * memory. Files are 0600 in a 0700 directory and flushed to disk (fsync) before the run may
 * COMMIT; if anything fails, the directory is removed again (nothing was deleted, and a backup
 * holds personal data). See docs/BACKUP.md.
 */
export const MANIFEST = 'manifest.json';

export interface BackupFile {
  readonly file: string;
  /** schema.table as SQL spells it (what restore reads). */
  readonly table: string;
  /** Its schema and name as the database spells them (unquoted). */
  readonly schema: string | null;
  readonly name: string | null;
  /** The columns of each line, in order (generated columns are left out: the server computes them). */
  readonly columns: readonly string[];
  readonly rows: number;
  readonly sha256: string;
  /** Why these rows are in the backup: 'step 3', 'step 3 cascade via fk_name', 'wipe'. */
  readonly reason: string;
  /**
   * An update step's rows (anonymize:, detach:): the rows are still there, so the file holds
   * their primary key and the old values of the columns the step overwrote, and restore puts
   * those values back (UPDATE by key) instead of inserting rows.
   */
  readonly update?: { readonly key: readonly string[]; readonly columns: readonly string[] };
}

/** A serial or identity sequence as it was when its table was first copied. */
export interface SequenceState {
  readonly sequence: string;
  readonly lastValue: string;
  readonly isCalled: boolean;
}

export interface Manifest {
  readonly version: 1;
  readonly policy: string;
  readonly kind: string;
  readonly planSha256: string;
  readonly database: { readonly name: string; readonly host: string; readonly port: number };
  readonly createdAt: string;
  /** In the order the rows were removed; restore loads parents before children. */
  readonly files: readonly BackupFile[];
  /** Sequences of the copied tables before anything ran (a wipe's RESTART IDENTITY resets them). */
  readonly sequences: readonly SequenceState[];
  /** A purge recorded in the erasure ledger: its subjects' digests, for restore's un-erasure entries (src/ledger). */
  readonly ledger?: { readonly subjectTable: string; readonly keyColumns: readonly string[]; readonly keyId: string; readonly subjects: readonly string[] };
}

export class BackupWriter {
  private readonly files: BackupFile[] = [];
  private readonly sequences = new Map<string, SequenceState>();
  private done = false;

  private constructor(readonly dir: string) {}

  /** The directory must be new or empty: a backup never mixes with another. */
  static async create(dir: string): Promise<BackupWriter> {
    const existing = await readdir(dir).catch(() => undefined);
    if (existing && existing.length) throw new BackupError(`--backup ${dir}: the directory is not empty`);
    try {
      ensureDirectory(dir); // not fs.mkdir's recursive mode, which never returns under /proc
      await chmod(dir, 0o700); // an existing empty directory too: the files hold personal data
      // Probe that it is writable before anything is deleted.
      await writeFile(join(dir, '.probe'), '', { mode: 0o600 });
      await rm(join(dir, '.probe'));
    } catch (e) {
      throw new BackupError(`--backup ${dir}: cannot write there (${(e as Error).message})`, { cause: e });
    }
    return new BackupWriter(dir);
  }

  /** COPY (SELECT <columns> FROM <table> [WHERE <condition>]) TO STDOUT, straight into a file. */
  async copy(tx: postgres.TransactionSql, table: string, condition: string, reason: string, only = false, update?: BackupFile['update']): Promise<BackupFile> {
    const columns = update ? [...new Set([...update.key, ...update.columns])] : await copyableColumns(tx, table);
    if (!update) await this.recordSequences(tx, table, columns);
    const list = columns.map(quoteColumn).join(', ');
    const query = `COPY (SELECT ${list} FROM ${only ? 'ONLY ' : ''}${table}${condition ? ` WHERE ${condition}` : ''}) TO STDOUT`;
    const file = `${String(this.files.length + 1).padStart(3, '0')}-${table.replace(/[^A-Za-z0-9_.-]+/g, '_')}.copy`;
    const path = join(this.dir, file);
    const hash = createHash('sha256');
    let rows = 0;
    let bytes = 0;
    let fd: number;
    try {
      fd = openSync(path, 'wx', 0o600);
    } catch (e) {
      throw new BackupError(`backup of ${table} to ${path} failed: ${(e as Error).message}`, { cause: e });
    }
    let failed: Error | undefined;
    try {
      // Written synchronously as each chunk arrives, never through backpressure: postgres.js
      // 3.4.x can leave its socket paused when a COPY ends while its stream is over the
      // high-water mark (porsager/postgres#499), and the next query then never returns. Memory
      // stays bounded all the same: one chunk at a time.
      const source = await tx.unsafe(query).readable();
      await new Promise<void>((resolve, reject) => {
        // A chunk is often a single row: gather them, one write(2) per 256 KiB.
        const buffer = Buffer.allocUnsafe(256 * 1024);
        let pending = 0;
        source.on('data', (chunk: Buffer) => {
          if (failed) return; // keep draining: the COPY must run to its end on the wire
          try {
            hash.update(chunk);
            // COPY text format: one line a row (newlines inside values are escaped).
            for (let at = chunk.indexOf(0x0a); at !== -1; at = chunk.indexOf(0x0a, at + 1)) rows++;
            bytes += chunk.length;
            if (pending + chunk.length > buffer.length) {
              writeAll(fd, buffer.subarray(0, pending));
              pending = 0;
            }
            if (chunk.length > buffer.length) writeAll(fd, chunk);
            else pending += chunk.copy(buffer, pending);
          } catch (e) {
            failed = e as Error;
          }
        });
        source.on('end', () => {
          try {
            if (!failed && pending) writeAll(fd, buffer.subarray(0, pending));
          } catch (e) {
            failed = e as Error;
          }
          resolve();
        });
        source.on('error', reject);
      });
      if (!failed) {
        fsyncSync(fd);
        // What is on disk is everything the server sent, byte for byte.
        const size = fstatSync(fd).size;
        if (size !== bytes) failed = new Error(`${size} bytes on disk, ${bytes} received`);
      }
    } catch (e) {
      if ((e as { name?: string }).name === 'PostgresError') throw e;
      failed = e as Error;
    } finally {
      closeSync(fd);
    }
    if (failed) throw new BackupError(`backup of ${table} to ${path} failed: ${failed.message}`, { cause: failed });
    const names = parseQualified(table);
    const entry: BackupFile = { file, table, schema: names?.schema ?? null, name: names?.name ?? null, columns, rows, sha256: hash.digest('hex'), reason, ...(update ? { update } : {}) };
    this.files.push(entry);
    return entry;
  }

  /** The manifest goes last: a backup without one is incomplete by definition. */
  async finish(meta: Omit<Manifest, 'files' | 'version' | 'sequences'>): Promise<Manifest> {
    const manifest: Manifest = { version: 1, ...meta, files: this.files, sequences: [...this.sequences.values()] };
    const path = join(this.dir, MANIFEST);
    try {
      await writeFile(path, `${JSON.stringify(manifest, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
      await fsync(path);
      await fsync(this.dir);
    } catch (e) {
      throw new BackupError(`writing ${path} failed: ${(e as Error).message}`, { cause: e });
    }
    this.done = true;
    return manifest;
  }

  private async recordSequences(tx: postgres.TransactionSql, table: string, columns: readonly string[]): Promise<void> {
    for (const sequence of await ownedSequences(tx, table, columns)) {
      if (this.sequences.has(sequence)) continue;
      const [state] = await tx.unsafe<{ last_value: string; is_called: boolean }[]>(`SELECT last_value::text, is_called FROM ${sequence}`);
      this.sequences.set(sequence, { sequence, lastValue: state!.last_value, isCalled: state!.is_called });
    }
  }

  /** Rows copied per table so far, of the rows deleted (an update step's files are not counted). */
  rowsByTable(): Map<string, number> {
    const out = new Map<string, number>();
    for (const f of this.files) if (!f.update) out.set(f.table, (out.get(f.table) ?? 0) + f.rows);
    return out;
  }

  /** The manifest is on disk: from here on, whether the rows are gone depends on COMMIT. */
  get finished(): boolean {
    return this.done;
  }

  async discard(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true });
  }
}

/** write(2) may write less than asked (a file size limit, a full disk): go on until all is out. */
function writeAll(fd: number, chunk: Buffer): void {
  for (let offset = 0; offset < chunk.length; ) {
    const written = writeSync(fd, chunk, offset);
    if (written <= 0) throw new Error('the file system accepted no more bytes');
    offset += written;
  }
}

async function fsync(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Columns in table order, without generated ones (they cannot be inserted, and recompute). */
export async function copyableColumns(sql: postgres.Sql | postgres.TransactionSql, table: string): Promise<string[]> {
  const rows = await sql<{ name: string }[]>`
    SELECT attname AS name FROM pg_attribute
    WHERE attrelid = ${table}::regclass AND attnum > 0 AND NOT attisdropped AND attgenerated = ''
    ORDER BY attnum`;
  return rows.map((r) => r.name);
}

/** Serial and identity sequences behind a table's columns (a partition's are its root's). */
export async function ownedSequences(sql: postgres.Sql | postgres.TransactionSql, table: string, columns: readonly string[]): Promise<string[]> {
  const rows = await sql<{ s: string }[]>`
    SELECT DISTINCT pg_get_serial_sequence(coalesce(pg_partition_root(${table}::regclass), ${table}::regclass)::text, c) AS s
    FROM unnest(${columns as string[]}::text[]) AS c
    WHERE pg_get_serial_sequence(coalesce(pg_partition_root(${table}::regclass), ${table}::regclass)::text, c) IS NOT NULL`;
  return rows.map((r) => r.s).sort();
}

export function quoteColumn(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/**
 * Copies what `DELETE FROM table WHERE condition` removes, just before it runs: the step's own
 * rows in one file (reason `step`), then, for every table ON DELETE CASCADE reaches, the rows it
 * will take along, each row once (`<step> cascade via <keys>`), children before parents.
 *
 * The cascade is followed row by row, not by rewriting conditions: the rows removed so far are
 * held as (tableoid, ctid) in a temporary table per reached table, and each round adds the rows
 * whose foreign key points at a row added in the round before, until a round adds nothing. So a
 * self-reference (a folder tree) is followed to every level, and a row the step's own where
 * already removes is never copied a second time as a cascade row.
 */
export async function backUpDelete(tx: postgres.TransactionSql, writer: BackupWriter, catalog: Catalog, table: string, condition: string, reason: string): Promise<void> {
  const targets = cascadeTargets(catalog, table);
  if (!targets.length) {
    await writer.copy(tx, table, condition, reason);
    return;
  }
  const only = (t: string) => (catalog.tables.get(t)?.partitioned ? '' : 'ONLY ');
  const sets = new Map<string, string>();
  for (const t of [table, ...targets.map((x) => x.table)]) {
    if (sets.has(t)) continue;
    const name = `purgekit_backup_${sets.size}`;
    sets.set(t, `pg_temp.${name}`);
    await tx.unsafe(`CREATE TEMP TABLE ${name} (t oid NOT NULL, c tid NOT NULL, round int NOT NULL) ON COMMIT DROP`);
  }
  try {
    // Round 0: the step's own rows, as its DELETE takes them (inheritance children included).
    const seeded = await tx.unsafe(`INSERT INTO ${sets.get(table)} SELECT tableoid, ctid, 0 FROM ${table}${condition ? ` WHERE ${condition}` : ''}`);
    const edges = targets.flatMap((x) => x.via);
    // Tables that gained rows in the round before: only their keys can reach new rows.
    let fresh = new Set(seeded.count ? [table] : []);
    for (let round = 1; fresh.size; round++) {
      const grown = new Set<string>();
      for (const fk of edges) {
        if (!fresh.has(fk.references)) continue;
        const child = sets.get(fk.table)!;
        const parent = sets.get(fk.references)!;
        const cols = fk.columns.map((c) => `x.${quoteColumn(c)}`).join(', ');
        const refs = fk.referencedColumns.map((c) => `p.${quoteColumn(c)}`).join(', ');
        // A foreign key of a plain table holds for its own rows only (ONLY); one of a partitioned
        // table for all its partitions.
        const result = await tx.unsafe(`INSERT INTO ${child}
          SELECT x.tableoid, x.ctid, ${round} FROM ${only(fk.table)}${fk.table} AS x
          WHERE (${cols}) IN (SELECT ${refs} FROM ${only(fk.references)}${fk.references} AS p JOIN ${parent} AS g ON g.t = p.tableoid AND g.c = p.ctid WHERE g.round = ${round - 1})
            AND NOT EXISTS (SELECT FROM ${child} AS g WHERE g.t = x.tableoid AND g.c = x.ctid)`);
        if (result.count) grown.add(fk.table);
      }
      fresh = grown;
    }
    for (const x of targets) {
      const keys = [...new Set(x.via.map((fk) => fk.name))].join(', ');
      await writer.copy(tx, x.table, `EXISTS (SELECT FROM ${sets.get(x.table)} AS g WHERE g.t = ${x.table}.tableoid AND g.c = ${x.table}.ctid AND g.round > 0)`, `${reason} cascade via ${keys}`, only(x.table) !== '');
    }
    await writer.copy(tx, table, `EXISTS (SELECT FROM ${sets.get(table)} AS g WHERE g.t = ${table}.tableoid AND g.c = ${table}.ctid AND g.round = 0)`, reason);
  } finally {
    await tx.unsafe(`DROP TABLE ${[...sets.values()].join(', ')}`);
  }
}

/**
 * Copies the old values of what `UPDATE table SET <columns> WHERE condition` overwrites, just
 * before it runs: each row's primary key and those columns, so that restore can put them back.
 * A table without a primary key cannot be backed up this way (nothing names a row for certain
 * once its values changed): refused before anything changed.
 */
export async function backUpUpdate(tx: postgres.TransactionSql, writer: BackupWriter, table: string, condition: string, columns: readonly string[], reason: string): Promise<void> {
  const key = await primaryKeyOf(tx, table);
  if (!key.length) throw new BackupError(`--backup: ${table} has no primary key, so the old values of the rows ${reason} updates could not be put back by restore; add one, or run without --backup`);
  await writer.copy(tx, table, condition, reason, false, { key, columns });
}

/** A table's primary key columns, in key order ([] without one). */
export async function primaryKeyOf(sql: postgres.Sql | postgres.TransactionSql, table: string): Promise<string[]> {
  const rows = await sql<{ name: string }[]>`
    SELECT a.attname AS name
    FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
    WHERE i.indrelid = ${table}::regclass AND i.indisprimary
    ORDER BY array_position(i.indkey::int2[], a.attnum)`;
  return rows.map((r) => r.name);
}
