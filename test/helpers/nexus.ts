/** The seed-000 (nexus) fixture, shared by the script tests and the runner tests. */
import type { TestDb } from '../harness/db.js';

/** Rows that belong to one nexus user, across the tables that name users. */
export async function rowsOf(db: TestDb, userId: string): Promise<number> {
  const [row] = await db.sql<{ n: string }[]>`
    SELECT (SELECT count(*) FROM user_profiles WHERE user_id = ${userId})
         + (SELECT count(*) FROM ai_conversations WHERE user_id = ${userId})
         + (SELECT count(*) FROM ai_memories WHERE user_id = ${userId})
         + (SELECT count(*) FROM oauth_tokens WHERE user_id = ${userId})
         + (SELECT count(*) FROM company_members WHERE user_id = ${userId})
         + (SELECT count(*) FROM user_organizations WHERE user_id = ${userId})
         + (SELECT count(*) FROM companies WHERE owner_id = ${userId}) AS n`;
  return Number(row!.n);
}
