import type postgres from 'postgres';
import type { LoadedFile } from '../load/loadPolicy.js';
import type { FunctionName, Policy } from '../policy.js';
import { authorSql, functionLabel, needsCatalogCheck } from '../sql/functionRules.js';
import { describe } from '../validate/schema.js';
import { diagnostic, type LintDiagnostic } from './diagnostic.js';
import type { LintContext } from './graph.js';

/**
 * PK-L012: author SQL calls a function that is VOLATILE in this database (a user-defined or
 * an extension's function; validation has judged the built-ins already). The script refuses
 * to run with PK011 before any author SQL runs; lint says so at the SQL's place in the YAML.
 */

/** schema -> names of the VOLATILE functions there, among the names some policy calls. */
export type VolatileCatalog = ReadonlyMap<string, ReadonlySet<string>>;

/** One query: the VOLATILE functions named like a function some policy calls. */
export async function readVolatileFunctions(sql: postgres.Sql, policies: readonly Policy[]): Promise<VolatileCatalog> {
  const names = [...new Set(policies.flatMap((p) => authorSql(p).flatMap((x) => x.fragment.functions ?? []).filter((f) => needsCatalogCheck(f, p.allowFunctions ?? [])).map((f) => f.name)))];
  const out = new Map<string, Set<string>>();
  if (!names.length) return out;
  const rows = await sql<{ schema: string; name: string }[]>`
    SELECT n.nspname AS schema, p.proname AS name
    FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
    WHERE p.provolatile = 'v' AND p.proname = ANY (${names}::text[])`;
  for (const r of rows) {
    if (!out.has(r.schema)) out.set(r.schema, new Set());
    out.get(r.schema)!.add(r.name);
  }
  return out;
}

export function volatileFunctions(ctx: LintContext, policy: Policy, file: LoadedFile): LintDiagnostic[] {
  const catalog = ctx.volatileFunctions;
  if (!catalog) return [];
  // The script's search_path: the policy's schema, then pg_catalog (always searched).
  const isVolatile = (f: FunctionName) => (f.schema !== undefined ? [f.schema] : [policy.schema, 'pg_catalog']).some((s) => catalog.get(s)?.has(f.name));
  const out: LintDiagnostic[] = [];
  for (const { path, fragment } of authorSql(policy)) {
    for (const f of fragment.functions ?? []) {
      if (!needsCatalogCheck(f, policy.allowFunctions ?? []) || !isVolatile(f)) continue;
      out.push(
        diagnostic(
          file,
          path,
          'PK-L012',
          `${describe(path)}: ${functionLabel(f)}() is VOLATILE in this database (it can change data or settings): the script refuses to run with PK011; declare it STABLE if it only reads, or list it in allow_functions if you vouch for it`,
        ),
      );
    }
  }
  return out;
}
