import { writeFile } from 'node:fs/promises';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readCatalog } from '../catalog/catalog.js';
import { discover, policyNameOf } from '../discover/discover.js';
import { tableOption } from '../discover/resolve.js';
import { UsageError } from '../core/errors.js';
import { connect, connected } from '../db/connect.js';
import { loadParser } from '../sql/parser.js';
import { SCHEMA_PATH } from '../validate/schema.js';

export interface DiscoverCommandOptions {
  /** postgres:// URL; else DATABASE_URL, else the PG* variables. */
  readonly connection?: string;
  /** `schema.table` or a bare name in `schema` (default public). */
  readonly table: string;
  readonly key: string;
  /** Default: purge-<table>. */
  readonly name?: string;
  readonly schema?: string;
  /** A file to write; it must not exist yet. Without it the text is returned for stdout. */
  readonly out?: string;
}

/**
 * The schema file of the purgekit that is running (node_modules/purgekit/schema/ in a project
 * that installed it), relative to the policy file: --out, or for stdout a file in ./policies/.
 */
export function schemaRef(out: string | undefined, cwd = process.cwd()): string {
  const file = resolve(cwd, out ?? join('policies', 'policy.yaml'));
  return relative(dirname(file), fileURLToPath(SCHEMA_PATH)).split(sep).join('/');
}

/** purgekit discover: read the live catalog (read-only), write a purge policy skeleton. */
export async function discoverCommand(options: DiscoverCommandOptions): Promise<{ yaml: string; path?: string }> {
  if (!options.table) throw new UsageError('discover needs --table <table> (schema.table or a name in --schema, default public)');
  if (!options.key) throw new UsageError('discover needs --key <column>: the column the purge finds rows by');
  await loadParser();
  const conn = connect(options.connection);
  let yaml: string;
  try {
    const catalog = await connected(conn, (sql) => readCatalog(sql));
    const name = options.name ?? policyNameOf(tableOption(catalog, options.table, options.schema).name);
    yaml = discover(catalog, {
      table: options.table, key: options.key, name, schemaRef: schemaRef(options.out),
      ...(options.schema !== undefined ? { schema: options.schema } : {}),
    });
  } finally {
    await conn.sql.end({ timeout: 5 });
  }
  if (options.out === undefined) return { yaml };
  try {
    // wx: a reviewed policy is never overwritten by a fresh skeleton.
    await writeFile(options.out, yaml, { flag: 'wx' });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') throw new UsageError(`--out ${options.out}: the file exists; discover does not overwrite a policy (remove it, or print to stdout and compare)`);
    if (code === 'ENOENT') throw new UsageError(`--out ${options.out}: its directory does not exist`);
    throw e;
  }
  return { yaml, path: options.out };
}
