/**
 * The inverse of `schema.name` as quoteIdent() spells it: `public."Account"` -> public, Account.
 * null for anything else.
 */
export function parseQualified(text: string): { schema: string; name: string } | null {
  const part = '([^".]+|"(?:[^"]|"")+")';
  const m = new RegExp(`^${part}\\.${part}$`).exec(text);
  if (!m) return null;
  const unquote = (p: string) => (p.startsWith('"') ? p.slice(1, -1).replaceAll('""', '"') : p);
  return { schema: unquote(m[1]!), name: unquote(m[2]!) };
}
