import type { FlagDecl, ParamDecl } from '../policy.js';
import { oneLine } from '../core/names.js';
import { quoteIdent } from '../sql/quote.js';

/**
 * The parameter block: one temporary table of typed values, the only place a standalone script
 * reads parameters from (psql variables do not reach inside DO blocks). compile() writes it with
 * every value NULL and every flag at its default; render fills in literals.
 */
export interface ParamsShape {
  readonly params: readonly ParamDecl[];
  readonly flags: readonly FlagDecl[];
  readonly forceMulti: boolean;
  readonly maxSubjects: number;
}

/** Values as SQL text, already quoted: a literal for params, true/false for flags. */
export type RenderedValues = ReadonlyMap<string, string>;

export function paramsBlock(shape: ParamsShape, values: RenderedValues = new Map()): string {
  const lines: string[] = [];
  for (const p of shape.params) lines.push(`${values.get(p.name) ?? 'NULL'}::${p.type} AS ${quoteIdent(p.name)}`);
  for (const f of shape.flags) lines.push(`${values.get(f.name) ?? String(f.default)} AS ${quoteIdent(f.name)}`);
  if (shape.forceMulti) lines.push(`${values.get('force_multi') ?? 'false'} AS force_multi`);
  return `CREATE TEMP TABLE purgekit_params ON COMMIT DROP AS\nSELECT\n${lines.map((l, i) => `  ${l}${i < lines.length - 1 ? ',' : ''}`).join('\n')}`;
}

/** One comment line per value, for the block's heading (sql-formatter would move trailing comments). */
export function paramsLegend(shape: ParamsShape): string[] {
  const describe = (text?: string) => (text ? `: ${oneLine(text)}` : '');
  return [
    ...shape.params.map((p) => `  ${p.name} (${p.type}${p.normalize ? `, compared as ${p.normalize}(value)` : ''})${describe(p.description)}`),
    ...shape.flags.map((f) => `  ${f.name} (flag, default ${f.default})${describe(f.description)}`),
    ...(shape.forceMulti ? [`  force_multi (flag, default false): allow more than ${shape.maxSubjects} matching subject${shape.maxSubjects === 1 ? '' : 's'}`] : []),
  ];
}
