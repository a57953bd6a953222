import type postgres from 'postgres';
import { readCatalog } from '../catalog/catalog.js';
import type { LoadedFile } from '../load/loadPolicy.js';
import type { Policy } from '../policy.js';
import { readDeferred } from './deferred.js';
import { byPosition, type LintDiagnostic } from './diagnostic.js';
import type { LintContext } from './graph.js';
import { probePolicy } from './probes.js';
import { lintPolicy } from './rules.js';
import { updateColumnsLint } from './updateRules.js';
import { readVolatileFunctions } from './volatileFunctions.js';

/**
 * Every rule on every policy against one live database: the catalog is read once, the schema
 * rules are pure, the SQL probes run in a rolled-back transaction per policy. Nothing is written.
 */
export async function lintPolicies(sql: postgres.Sql, policies: readonly Policy[], files: readonly LoadedFile[], options: { verbose?: boolean } = {}): Promise<LintDiagnostic[]> {
  const ctx: LintContext = {
    catalog: await readCatalog(sql), deferred: await readDeferred(sql), volatileFunctions: await readVolatileFunctions(sql, policies), verbose: options.verbose === true,
  };
  const out: LintDiagnostic[] = [];
  for (const policy of policies) {
    const file = files.find((f) => f.path === policy.source.path);
    if (!file) throw new Error(`no loaded file for policy ${policy.name} (${policy.source.path})`);
    out.push(...lintPolicy(ctx, policy, file), ...(await updateColumnsLint(sql, ctx, policy, file)), ...(await probePolicy(sql, ctx, policy, file)));
  }
  return out.sort(byPosition);
}
