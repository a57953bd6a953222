import { LiteralError } from '../core/errors.js';
import { NON_UNRESERVED_KEYWORDS } from './keywords.js';

/**
 * Quoting exactly as PostgreSQL's own quote_ident() and format('%L') do, so that a literal
 * rendered into a standalone script round-trips whatever standard_conforming_strings says.
 * Parser-free: the keywords come from a static list (keywords.ts), so printing a plan needs no parser.
 */

const SIMPLE_IDENTIFIER = /^[a-z_][a-z0-9_]*$/;

export function quoteIdent(name: string): string {
  let quoted = identifiers.get(name);
  if (quoted === undefined) {
    quoted = SIMPLE_IDENTIFIER.test(name) && !isKeyword(name) ? name : `"${name.replaceAll('"', '""')}"`;
    if (identifiers.size >= 10_000) identifiers.clear();
    identifiers.set(name, quoted);
  }
  return quoted;
}

/** Printing a plan quotes the same few names hundreds of times (qualified() of every step's table). */
const identifiers = new Map<string, string>();

/** Reserved and other non-unreserved keywords must be quoted to be used as names. */
function isKeyword(word: string): boolean {
  return NON_UNRESERVED_KEYWORDS.has(word);
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
