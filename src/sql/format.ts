import { format } from 'sql-formatter';

/**
 * The one formatting setting of generated SQL. Deterministic and idempotent (verified by the
 * golden tests); keywords are left as the author wrote them so their SQL stays recognisable.
 */
export function formatSql(sql: string): string {
  return format(sql, { language: 'postgresql', tabWidth: 2, keywordCase: 'preserve', linesBetweenQueries: 1 }).trim();
}

export function indent(text: string, spaces: number): string {
  const pad = ' '.repeat(spaces);
  return text
    .split('\n')
    .map((line) => (line ? pad + line : line))
    .join('\n');
}
