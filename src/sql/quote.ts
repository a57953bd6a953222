import { LiteralError } from '../core/errors.js';
import { scan } from './parser.js';

/**
 * Quoting exactly as PostgreSQL's own quote_ident() and format('%L') do, so that a literal
 * rendered into a standalone script round-trips whatever standard_conforming_strings says.
 * Needs loadParser() first (keywords come from the real scanner).
 */

const SIMPLE_IDENTIFIER = /^[a-z_][a-z0-9_]*$/;

export function quoteIdent(name: string): string {
  if (SIMPLE_IDENTIFIER.test(name) && !isKeyword(name)) return name;
  return `"${name.replaceAll('"', '""')}"`;
}

/** Reserved and other non-unreserved keywords must be quoted to be used as names. */
function isKeyword(word: string): boolean {
  const tokens = scan(word);
  const kind = tokens.length === 1 ? tokens[0]!.keywordName : 'NO_KEYWORD';
  return kind !== 'NO_KEYWORD' && kind !== 'UNRESERVED_KEYWORD';
}

// Parser-free, for modules that must not load the PostgreSQL parser (graph/resolve.ts).
export { parseQualified } from './qualified.js';

/** format('%L', value): doubled quotes; E'' with doubled backslashes when a backslash is present. */
export function quoteLiteral(value: string): string {
  if (value.includes('\0')) throw new LiteralError('contains a NUL byte, which PostgreSQL text cannot hold');
  if (!value.isWellFormed()) throw new LiteralError('contains a lone UTF-16 surrogate (not valid Unicode)');
  const body = value.replaceAll("'", "''");
  return value.includes('\\') ? `E'${body.replaceAll('\\', '\\\\')}'` : `'${body}'`;
}
