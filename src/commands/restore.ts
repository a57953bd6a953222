import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type postgres from 'postgres';
import { readCatalog, type Catalog } from '../catalog/catalog.js';
import { RestoreRefused } from '../core/errors.js';
import { parseQualified, quoteLiteral } from '../sql/quote.js';
import { MANIFEST, ownedSequences, primaryKeyOf, quoteColumn, type BackupFile, type Manifest } from '../run/backup.js';
import { connect, currentDatabase } from '../db/connect.js';
import { checkConfirmation } from '../run/guards.js';
import { recordRestore } from '../ledger/restore.js';


export interface RestoreOptions {
  readonly dir: string;
  readonly connection?: string;
  readonly confirm?: string;
  readonly ask?: (question: string) => Promise<string>;
  readonly say: (line: string) => void;
}

export interface RestoreResult {
  readonly policy: string;
  /** The database restored into. */
  readonly database: string;
  /** In the order restored; table as SQL spells it, schema and name as the database does. */
  readonly tables: readonly { readonly table: string; readonly schema: string | null; readonly name: string | null; readonly rows: number; readonly reason: string }[];
  /** The erasure ledger: subjects recorded as restored (un-erased), when the purge was recorded there. */
  readonly unerased: number;
}

/**
 * purgekit restore <dir>: puts the rows of a backup back, in one transaction, parents before
 * children. It refuses (RestoreRefused), changing nothing, when the backup is incomplete or
 * altered (a file's sha256 or row count differs from the manifest) or when a row to restore
 * already exists.
 */
export async function restoreCommand(options: RestoreOptions): Promise<RestoreResult> {
  const manifest = await readManifest(options.dir);
  for (const f of manifest.files) await verify(options.dir, f);
  options.say(`backup of ${manifest.policy} from ${manifest.database.name} (${manifest.createdAt}): ${manifest.files.length} files verified`);

  const conn = connect(options.connection);
  try {
    const database = await currentDatabase(conn);
    await checkConfirmation({ confirm: 'database' }, database, options.confirm, options.ask);
    if (database !== manifest.database.name) options.say(`note: the backup was taken from ${manifest.database.name}, restoring into ${database}`);
    const catalog = await readCatalog(conn.sql);
    checkNames(catalog, manifest.files);
    // Deleted rows go back first, parents before children; then the old values of updated rows,
    // the last update undone first (so a row two steps changed ends as it was before both).
    const ordered = [...restoreOrder(catalog, manifest.files.filter((f) => !f.update)), ...manifest.files.filter((f) => f.update).reverse()];
    const tables: RestoreResult['tables'][number][] = [];
    let unerased = 0;
    await conn.sql.begin(async (tx) => {
      for (const [i, f] of ordered.entries()) {
        const names = parseQualified(f.table);
        tables.push({ table: f.table, schema: names?.schema ?? null, name: names?.name ?? null, rows: await restoreFile(tx, options.dir, f, i), reason: f.reason });
        options.say(`  ${f.table}: ${f.rows} rows restored (${f.reason})`);
      }
      await restoreSequences(tx, manifest, ordered);
      // The erasure ledger (src/ledger/restore.ts): an explicit undo, so replay leaves these subjects alone.
      unerased = await recordRestore(tx, manifest, options.say);
    });
    return { policy: manifest.policy, database, tables, unerased };
  } finally {
    await conn.sql.end({ timeout: 5 });
  }
}

async function readManifest(dir: string): Promise<Manifest> {
  const text = await readFile(join(dir, MANIFEST), 'utf8').catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') throw new RestoreRefused(`${dir}: no ${MANIFEST}: not a backup, or an incomplete one (the manifest is written last)`);
    throw e;
  });
  let manifest: Manifest;
  try {
    manifest = JSON.parse(text) as Manifest;
  } catch {
    throw new RestoreRefused(`${join(dir, MANIFEST)}: not valid JSON (altered?)`);
  }
  if (manifest.version !== 1 || !Array.isArray(manifest.files)) throw new RestoreRefused(`${join(dir, MANIFEST)}: not a purgekit backup manifest (version 1)`);
  return manifest;
}

/**
 * The manifest's names go into SQL and paths: each table must be one this database has (as the
 * catalog spells it), each file a plain name inside the backup directory. An edited manifest is
 * refused here rather than trusted.
 */
function checkNames(catalog: Catalog, files: readonly BackupFile[]): void {
  const known = new Set([...catalog.tables.values()].flatMap((t) => [t.qualified, ...t.partitions]));
  for (const f of files) {
    if (!known.has(f.table)) throw new RestoreRefused(`${MANIFEST}: ${JSON.stringify(f.table)} is not a table of this database`);
    if (!/^[^/\\]+$/.test(f.file) || f.file.startsWith('.')) throw new RestoreRefused(`${MANIFEST}: ${JSON.stringify(f.file)} is not a file name inside the backup`);
  }
}

/** The file is exactly what the manifest recorded: same bytes (sha256), same number of rows. */
async function verify(dir: string, f: BackupFile): Promise<void> {
  if (typeof f.file !== 'string' || !/^[^/\\]+$/.test(f.file) || f.file.startsWith('.')) {
    throw new RestoreRefused(`${MANIFEST}: ${JSON.stringify(f.file)} is not a file name inside the backup`);
  }
  const path = join(dir, f.file);
  const hash = createHash('sha256');
  let rows = 0;
  try {
    for await (const chunk of createReadStream(path) as AsyncIterable<Buffer>) {
      hash.update(chunk);
      for (const byte of chunk) if (byte === 0x0a) rows++;
    }
  } catch (e) {
    throw new RestoreRefused(`${path}: cannot be read (${(e as Error).message}); the backup is incomplete`);
  }
  if (hash.digest('hex') !== f.sha256) throw new RestoreRefused(`${path}: its sha256 does not match the manifest: the file was altered or truncated`);
  if (rows !== f.rows) throw new RestoreRefused(`${path}: ${rows} rows, the manifest says ${f.rows}`);
}

/**
 * Parents before children, from the live foreign keys (a partition counts as its partitioned
 * root); otherwise the reverse of the order the rows were removed in (children were removed first).
 */
export function restoreOrder(catalog: Catalog, files: readonly BackupFile[]): BackupFile[] {
  const rootOf = (table: string) => [...catalog.tables.values()].find((t) => t.qualified === table || t.partitions.includes(table))?.qualified ?? table;
  const pending = [...files].reverse();
  const out: BackupFile[] = [];
  while (pending.length) {
    const roots = new Set(pending.map((f) => rootOf(f.table)));
    // A file whose table references no table still pending (itself aside) can go now.
    const index = pending.findIndex((f) => {
      const root = rootOf(f.table);
      return !catalog.foreignKeys.some((fk) => fk.table === root && fk.references !== root && roots.has(fk.references));
    });
    out.push(...pending.splice(index >= 0 ? index : 0, 1)); // a cycle: fall back to removal order
  }
  return out;
}

async function restoreFile(tx: postgres.TransactionSql, dir: string, f: BackupFile, i: number): Promise<number> {
  const temp = await loadFile(tx, dir, f, i);
  return f.update ? putBack(tx, f, f.update, temp) : insertRows(tx, f, temp);
}

/** The file into a temporary table of its columns (verified again as it is read); returns the table. */
async function loadFile(tx: postgres.TransactionSql, dir: string, f: BackupFile, i: number): Promise<string> {
  const temp = `pg_temp.purgekit_restore_${i}`;
  const columns = f.columns.map(quoteColumn).join(', ');
  // Only the backed-up columns, with their types and no constraints (a generated column's NOT
  // NULL would refuse rows that leave it to the server).
  await tx.unsafe(`CREATE TEMP TABLE purgekit_restore_${i} ON COMMIT DROP AS SELECT ${columns} FROM ${f.table} WITH NO DATA`);
  const hash = createHash('sha256');
  const rehash = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      hash.update(chunk);
      done(null, chunk);
    },
  });
  await pipeline(createReadStream(join(dir, f.file)), rehash, await tx.unsafe(`COPY ${temp} (${columns}) FROM STDIN`).writable());
  // The file was verified before connecting; it must not have changed since.
  if (hash.digest('hex') !== f.sha256) throw new RestoreRefused(`${join(dir, f.file)} changed while it was being restored`);
  const [loaded] = await tx.unsafe<{ n: string }[]>(`SELECT count(*) AS n FROM ${temp}`);
  if (Number(loaded!.n) !== f.rows) throw new RestoreRefused(`${f.file}: loaded ${loaded!.n} rows, the manifest says ${f.rows}`);
  return temp;
}

/**
 * An update step's rows are still there: each gets its old values back, found by primary key.
 * A row that is gone since (or whose key changed) refuses the whole restore.
 */
async function putBack(tx: postgres.TransactionSql, f: BackupFile, update: NonNullable<BackupFile['update']>, temp: string): Promise<number> {
  const match = update.key.map((c) => `t.${quoteColumn(c)} = r.${quoteColumn(c)}`).join(' AND ');
  const [missing] = await tx.unsafe<{ n: string }[]>(`SELECT count(*) AS n FROM ${temp} r WHERE NOT EXISTS (SELECT FROM ${f.table} t WHERE ${match})`);
  if (Number(missing!.n) > 0) {
    throw new RestoreRefused(`${missing!.n} of the ${f.rows} rows whose old values are to be put back into ${f.table} are no longer there (same ${update.key.join(', ')}); nothing was restored`);
  }
  const set = update.columns.map((c) => `${quoteColumn(c)} = r.${quoteColumn(c)}`).join(', ');
  let updated: postgres.RowList<postgres.Row[]>;
  try {
    updated = await tx.unsafe(`UPDATE ${f.table} AS t SET ${set} FROM ${temp} AS r WHERE ${match}`);
  } catch (e) {
    const err = e as { code?: string; message: string; detail?: string };
    if (err.code?.startsWith('23')) {
      throw new RestoreRefused(`putting the old values back into ${f.table} conflicts with the rows there now: ${err.message}${err.detail ? ` (${err.detail})` : ''}; nothing was restored`);
    }
    throw e;
  }
  if (updated.count !== f.rows) throw new RestoreRefused(`${f.table}: updated ${updated.count} rows, the manifest says ${f.rows}`);
  return updated.count;
}

async function insertRows(tx: postgres.TransactionSql, f: BackupFile, temp: string): Promise<number> {
  const columns = f.columns.map(quoteColumn).join(', ');

  // A row already there: the same primary key, or, without one, the same values in every column.
  const key = await primaryKeyOf(tx, f.table);
  const match = key.length
    ? key.map((c) => `t.${quoteColumn(c)} = r.${quoteColumn(c)}`).join(' AND ')
    : // Compared as text: some types (json) have no equality operator.
      `ROW(${f.columns.map((c) => `t.${quoteColumn(c)}`).join(', ')})::text = ROW(${f.columns.map((c) => `r.${quoteColumn(c)}`).join(', ')})::text`;
  const [dupes] = await tx.unsafe<{ n: string }[]>(`SELECT count(*) AS n FROM ${temp} r WHERE EXISTS (SELECT FROM ${f.table} t WHERE ${match})`);
  if (Number(dupes!.n) > 0) {
    const same = key.length ? `same ${key.join(', ')}` : 'same values in every column; the table has no primary key';
    throw new RestoreRefused(`${dupes!.n} of the ${f.rows} rows to restore into ${f.table} already exist there (${same}); nothing was restored`);
  }
  let inserted: postgres.RowList<postgres.Row[]>;
  try {
    inserted = await tx.unsafe(`INSERT INTO ${f.table} (${columns}) OVERRIDING SYSTEM VALUE SELECT ${columns} FROM ${temp}`);
  } catch (e) {
    const err = e as { code?: string; message: string; detail?: string; constraint_name?: string };
    // Another key of the table (unique, exclusion, foreign) is taken or missing since the purge.
    if (err.code?.startsWith('23')) {
      throw new RestoreRefused(`restoring ${f.table} conflicts with the rows there now: ${err.message}${err.detail ? ` (${err.detail})` : ''}; nothing was restored`);
    }
    throw e;
  }
  if (inserted.count !== f.rows) throw new RestoreRefused(`${f.table}: inserted ${inserted.count} rows, the manifest says ${f.rows}`);
  return inserted.count;
}


/**
 * Serial and identity sequences end up where they were before the rows went (a wipe's RESTART
 * IDENTITY reset them), or at the column's maximum if that is higher; never lower than now.
 */
async function restoreSequences(tx: postgres.TransactionSql, manifest: Manifest, files: readonly BackupFile[]): Promise<void> {
  const tables = new Map<string, Set<string>>();
  for (const f of files) for (const c of f.columns) (tables.get(f.table) ?? tables.set(f.table, new Set()).get(f.table)!).add(c);
  const seen = new Set<string>();
  for (const [table, columns] of tables) {
    for (const sequence of await ownedSequences(tx, table, [...columns])) {
      if (seen.has(sequence)) continue;
      seen.add(sequence);
      const recorded = manifest.sequences?.find((s) => s.sequence === sequence);
      const candidates: string[] = [`(SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END FROM ${sequence})`];
      if (recorded) candidates.push(`${BigInt(recorded.lastValue) - (recorded.isCalled ? 0n : 1n)}`);
      for (const column of columns) {
        const [uses] = await tx<{ yes: boolean }[]>`SELECT pg_get_serial_sequence(coalesce(pg_partition_root(${table}::regclass), ${table}::regclass)::text, ${column}) = ${sequence} AS yes`;
        if (uses?.yes) candidates.push(`(SELECT max(${quoteColumn(column)})::bigint FROM ${table})`);
      }
      // The highest of: now, as recorded, the column's maximum. A sequence never called restarts uncalled.
      await tx.unsafe(`SELECT CASE WHEN v < (SELECT min_value FROM pg_sequences WHERE format('%I.%I', schemaname, sequencename) = ${quoteLiteral(sequence)})
          THEN setval(${quoteLiteral(sequence)}, (SELECT min_value FROM pg_sequences WHERE format('%I.%I', schemaname, sequencename) = ${quoteLiteral(sequence)}), false)
          ELSE setval(${quoteLiteral(sequence)}, v, true) END
        FROM (SELECT greatest(${candidates.join(', ')}) AS v) AS x`);
    }
  }
}

