import { format } from 'sql-formatter';

/**
 * sql-formatter's layout, as generated SQL used it before purgekit laid its statements out
 * itself (src/plan/print/): no command loads it now; test/author-sql.test.ts still checks that
 * accepted author SQL survives it token for token. To be dropped with that check.
 */
export function formatSql(sql: string): string {
  return format(sql, { language: 'postgresql', tabWidth: 2, keywordCase: 'preserve', linesBetweenQueries: 1 }).trim();
}
