import type { FlagDecl, ParamDecl } from '../policy.js';
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
  const lines: { sql: string; comment?: string }[] = [];
  for (const p of shape.params) lines.push({ sql: `${values.get(p.name) ?? 'NULL'}::${p.type} AS ${quoteIdent(p.name)}`, comment: p.description });
  for (const f of shape.flags) lines.push({ sql: `${values.get(f.name) ?? String(f.default)} AS ${quoteIdent(f.name)}`, comment: f.description });
  if (shape.forceMulti) {
    lines.push({ sql: `${values.get('force_multi') ?? 'false'} AS force_multi`, comment: `allow more than ${shape.maxSubjects} matching subject${shape.maxSubjects === 1 ? '' : 's'}` });
  }
  const body = lines.map((line, i) => {
    const comma = i < lines.length - 1 ? ',' : '';
    // A comment on the last line would be moved after the statement by sql-formatter.
    const comment = line.comment && comma ? ` -- ${line.comment.replace(/\s+/g, ' ').trim()}` : '';
    return `  ${line.sql}${comma}${comment}`;
  });
  return `CREATE TEMP TABLE purgekit_params AS\nSELECT\n${body.join('\n')}`;
}
