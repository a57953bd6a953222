import type postgres from 'postgres';
import { tableKey } from '../graph/resolve.js';
import type { LoadedFile, PathSegment } from '../load/loadPolicy.js';
import type { ColumnUpdate, Policy } from '../policy.js';
import { quoteIdent } from '../sql/quote.js';
import { didYouMean } from '../validate/didYouMean.js';
import { describe } from '../validate/schema.js';
import { diagnostic, type LintDiagnostic } from './diagnostic.js';
import type { LintContext } from './graph.js';

/**
 * PK-L013: an update step (anonymize:, detach:) overwrites a column it must not, judged against
 * the live schema: a column that does not exist; one of the primary key (the row would become
 * another row, and restore could not find it); NULL (null, detach, a default that is NULL) in a
 * NOT NULL column; a constant in a column of a unique index (two rows collide as soon as the step
 * matches more than one; NULL never collides unless the index says NULLS NOT DISTINCT); redact in
 * one (a warning: values of the same shape collide). detach of a column that is in no foreign key
 * is a warning: detach is meant for references. Located at the column's entry in the YAML.
 */
interface ColumnFacts {
  readonly name: string;
  readonly notNull: boolean;
  readonly hasDefault: boolean;
}

interface TableFacts {
  readonly columns: readonly ColumnFacts[];
  readonly primaryKey: readonly string[];
  /** Unique indexes (constraints too), without partial ones: their columns, and whether NULLs collide. */
  readonly unique: readonly { readonly name: string; readonly columns: readonly string[]; readonly nullsNotDistinct: boolean }[];
}

export async function updateColumnsLint(sql: postgres.Sql, ctx: LintContext, policy: Policy, file: LoadedFile): Promise<LintDiagnostic[]> {
  const out: LintDiagnostic[] = [];
  const facts = new Map<string, TableFacts>();
  for (const [i, step] of policy.steps.entries()) {
    if (!step.update) continue;
    const table = tableKey(ctx.catalog, step.table);
    if (!table) continue; // PK-L001's
    const known = facts.get(table) ?? (await tableFacts(sql, table));
    facts.set(table, known);
    const entry = (c: ColumnUpdate, j: number): PathSegment[] => (step.update!.mode === 'anonymize' ? ['steps', i, 'anonymize', c.column] : ['steps', i, 'detach', j]);
    step.update.set.forEach((c, j) => {
      const path = entry(c, j);
      const problems = columnProblems(ctx, table, known, step.update!.mode, c);
      for (const p of problems) out.push(diagnostic(file, path, 'PK-L013', `${describe(path)}: ${p.message}`, p.severity));
    });
  }
  return out;
}

function columnProblems(ctx: LintContext, table: string, t: TableFacts, mode: 'anonymize' | 'detach', c: ColumnUpdate): { message: string; severity?: 'warning' }[] {
  const column = t.columns.find((x) => x.name === c.column);
  const name = `${table}.${quoteIdent(c.column)}`;
  if (!column) {
    const hint = didYouMean(c.column, t.columns.map((x) => x.name));
    return [{ message: `column ${quoteIdent(c.column)} of ${table} does not exist${hint ? ` (did you mean ${hint}?)` : ''}` }];
  }
  const out: { message: string; severity?: 'warning' }[] = [];
  if (t.primaryKey.includes(c.column)) {
    out.push({ message: `${name} is part of the primary key of ${table}: a step keeps its rows and may not change what identifies them (delete the rows instead)` });
  }
  const setsNull = c.value.kind === 'null' || (c.value.kind === 'default' && !column.hasDefault);
  if (setsNull && column.notNull) {
    const what = mode === 'detach' ? 'detach sets it NULL' : c.value.kind === 'default' ? 'it has no default, so DEFAULT is NULL' : 'it would be set NULL';
    out.push({ message: `${name} is NOT NULL and ${what}: the run would fail (23502); ${mode === 'detach' ? 'delete the rows instead, or make the column nullable' : 'give it a value'}` });
  }
  const unique = t.unique.filter((u) => u.columns.includes(c.column));
  for (const u of unique) {
    if (c.value.kind === 'constant' && u.columns.length === 1) {
      out.push({ message: `${name} is unique (${quoteIdent(u.name)}): the constant ${c.value.literal} collides as soon as the step updates more than one row (23505); use an expression over the row (its key) or hash` });
    } else if ((c.value.kind === 'null' || (c.value.kind === 'default' && !column.hasDefault)) && u.nullsNotDistinct && u.columns.length === 1) {
      out.push({ message: `${name} is unique with NULLS NOT DISTINCT (${quoteIdent(u.name)}): setting it NULL collides as soon as the step updates more than one row` });
    } else if (c.value.kind === 'redact' && u.columns.length === 1) {
      out.push({ severity: 'warning', message: `${name} is unique (${quoteIdent(u.name)}) and redact keeps only the shape of a value: two values of the same shape collide (23505); hash keeps them apart` });
    }
  }
  if (mode === 'detach' && !ctx.catalog.foreignKeys.some((fk) => fk.table === table && fk.columns.includes(c.column))) {
    out.push({ severity: 'warning', message: `${name} is in no foreign key: detach is for references (use anonymize to overwrite other columns)` });
  }
  return out;
}

async function tableFacts(sql: postgres.Sql, table: string): Promise<TableFacts> {
  const columns = await sql<{ name: string; not_null: boolean; has_default: boolean }[]>`
    SELECT attname AS name, attnotnull AS not_null, (atthasdef OR attidentity <> '') AS has_default
    FROM pg_attribute WHERE attrelid = ${table}::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum`;
  const indexes = await sql<{ name: string; primary: boolean; columns: string[]; nulls_not_distinct: boolean }[]>`
    SELECT c.relname AS name, i.indisprimary AS primary,
           array(SELECT a.attname::text FROM unnest(i.indkey::int2[]) AS k JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k) AS columns,
           coalesce((to_jsonb(i) ->> 'indnullsnotdistinct')::boolean, false) AS nulls_not_distinct
    FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
    WHERE i.indrelid = ${table}::regclass AND i.indisunique AND i.indpred IS NULL`;
  return {
    columns: columns.map((c) => ({ name: c.name, notNull: c.not_null, hasDefault: c.has_default })),
    primaryKey: indexes.find((i) => i.primary)?.columns ?? [],
    unique: indexes.map((i) => ({ name: i.name, columns: i.columns, nullsNotDistinct: i.nulls_not_distinct })),
  };
}
