/**
 * purgekit lint against a real PostgreSQL (test/fixtures/catalog.sql, one database per test):
 * for each rule a policy that triggers it and one that does not, with the exact file:line:col,
 * severity and message; the three reporters; the exit codes. Pure rule tests on a hand-built
 * catalog at the end.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import type { Catalog, ForeignKey, Table } from '../src/catalog/catalog.js';
import { lintCommand, type LintOptions } from '../src/commands/lint.js';
import { renderCommand } from '../src/commands/render.js';
import { InvalidPolicyError } from '../src/core/errors.js';
import { parsePolicyText } from '../src/load/loadPolicy.js';
import type { LintDiagnostic } from '../src/lint/diagnostic.js';
import { createIndexFix, splitQualified } from '../src/lint/graph.js';
import { keyLikeNames, lintPolicy, stepOrder } from '../src/lint/rules.js';
import type { Policy } from '../src/policy.js';
import { loadParser } from '../src/sql/parser.js';
import { validatePolicy } from '../src/validate/validatePolicy.js';
import { createTestDatabase, loadFixture, runSimpleQuery, snapshot, type TestDb } from './harness/db.js';

/** Purges one app."User" and every row that belongs to it: complete for the fixture as shipped. */
const USER = `version: 1
name: purge-user
kind: purge
schema: app
params:
  user_id: { type: text }
subject:
  table: User
  key: id
  lookup:
    - by: [user_id]
      where: id = :user_id
steps:
  - table: audit.event_notes
    where: (event_id, event_at) IN (SELECT id, at FROM events WHERE "userId" IN :subject)
  - table: events
    where: '"userId" IN :subject'
  - table: Comment
    where: '"authorId" IN :subject OR "postId" IN (SELECT id FROM "Post" WHERE "authorId" IN :subject)'
  - table: Post
    where: '"authorId" IN :subject'
  - table: Team
    where: '"ownerId" IN :subject'
  - table: User
    where: id IN :subject
    cascades: [User]
  - table: audit.login_attempts
    where: '"userId" IN :subject'
`;
const LOGIN_STEP = `  - table: audit.login_attempts\n    where: '"userId" IN :subject'\n`;
const COMMENT_STEP = `  - table: Comment\n    where: '"authorId" IN :subject OR "postId" IN (SELECT id FROM "Post" WHERE "authorId" IN :subject)'\n`;

/** Purges one app."Post": clean on the fixture as shipped. */
const POST = `version: 1
name: purge-post
kind: purge
schema: app
params:
  post_id: { type: integer, personal: false }
subject:
  table: Post
  key: id
  lookup:
    - by: [post_id]
      where: id = :post_id
steps:
  - table: Comment
    where: '"postId" IN :subject'
  - table: Post
    where: id IN :subject
`;

/**
 * What the User purge needs besides its steps: the User <-> Team cycle checked at COMMIT
 * (the Team step must go first, and "User"."teamId" still points at it until the User step),
 * and an index for "Comment"."authorId".
 */
const MAKE_USER_PURGE_CLEAN = `
  ALTER TABLE app."User" ALTER CONSTRAINT "User_teamId_fkey" DEFERRABLE INITIALLY DEFERRED;
  CREATE INDEX ON app."Comment" ("authorId");`;

beforeAll(() => loadParser());

async function fixture(): Promise<TestDb> {
  return createTestDatabase(loadFixture('catalog'));
}

/** A temp dir holding the policy as p.yaml; removed when the test finishes. */
function policyDir(text: string): { dir: string; file: string } {
  const dir = mkdtempSync(join(tmpdir(), 'purgekit-lint-'));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'p.yaml');
  writeFileSync(file, text);
  return { dir, file };
}

interface Linted {
  file: string;
  exitCode: number;
  output: string;
  diagnostics: LintDiagnostic[];
}

async function lint(db: TestDb, text: string, options: Partial<LintOptions> = {}): Promise<Linted> {
  const { dir, file } = policyDir(text);
  const run = (reporter: LintOptions['reporter']) => lintCommand({ paths: [dir], connection: db.url, strict: false, ...options, reporter });
  const json = await run('json');
  const doc = JSON.parse(json.output) as { diagnostics: LintDiagnostic[] };
  // The diagnostics always come from the JSON document; output and exit code from the reporter asked for.
  const asked = options.reporter && options.reporter !== 'json' ? await run(options.reporter) : json;
  return { file, exitCode: asked.exitCode, output: asked.output, diagnostics: doc.diagnostics };
}

const ofRule = (r: Linted, rule: string) => r.diagnostics.filter((d) => d.rule === rule);
const rulesOf = (r: Linted) => r.diagnostics.map((d) => d.rule);

describe('PK-L001 missing table', () => {
  it('errors on a required table that is absent, warns on a cascades entry, ignores an optional step', async () => {
    const db = await fixture();
    const r = await lint(db, `version: 1
name: missing
kind: purge
schema: app
params:
  user_id: { type: text }
subject:
  table: Usr
  key: id
  lookup:
    - by: [user_id]
      where: id = :user_id
steps:
  - table: Likes
    where: '"userId" IN :subject'
  - table: Reactions
    optional: true
    where: '"userId" IN :subject'
  - table: Post
    where: '"authorId" IN :subject'
    cascades: [Coment]
`);
    expect(r.diagnostics).toEqual([
      { file: r.file, line: 8, col: 10, rule: 'PK-L001', severity: 'error', message: 'subject.table: table app."Usr" does not exist (did you mean User?); the script fails with PK008' },
      {
        file: r.file, line: 14, col: 12, rule: 'PK-L001', severity: 'error',
        message: 'steps[0].table: table app."Likes" does not exist; the script fails with PK008 (optional: true skips a step whose table is absent)',
      },
      // The misspelt cascades entry leaves the real cascade undeclared.
      {
        file: r.file, line: 19, col: 12, rule: 'PK-L011', severity: 'warning',
        message:
          'deleting from app."Post" removes rows of app."Comment" (app."Post" <- app."Comment" ("Comment_postId_fkey"), ON DELETE CASCADE), and no step declares it in cascades: apply fails a run in which that changes a row; add cascades: [Comment] to this step, or a step for Comment before it',
      },
      {
        file: r.file, line: 21, col: 16, rule: 'PK-L001', severity: 'warning',
        message: 'steps[2].cascades[0]: table app."Coment" does not exist (did you mean Comment?); a change to the table meant here would count as unplanned',
      },
    ]);
    expect(r.exitCode).toBe(1);
  });

  it('errors on the table of a set that is absent', async () => {
    const db = await fixture();
    const sets = USER.replace('steps:\n', 'sets:\n  posts: { table: Posts, key: id, where: \'"authorId" IN :subject\' }\nsteps:\n');
    expect(sets).not.toBe(USER);
    const r = await lint(db, sets);
    expect(ofRule(r, 'PK-L001').map((d) => d.message)).toEqual(['sets.posts.table: table app."Posts" does not exist (did you mean Post?); the script fails with PK008']);
  });

  it('finds tables in other schemas, partitions and a table created after the policy', async () => {
    const db = await fixture();
    await db.sql.unsafe('CREATE TABLE app.later (id int)');
    const r = await lint(db, `version: 1
name: present
kind: cleanup
schema: app
steps:
  - table: audit.settings
    where: key = 'theme'
  - table: events_2024
    where: kind = 'login'
  - table: later
    all_rows: true
`);
    expect(ofRule(r, 'PK-L001')).toEqual([]);
  });
});

describe('PK-L002 missing column', () => {
  it('errors on a subject key that is not a column of the subject table', async () => {
    const db = await fixture();
    const r = await lint(db, USER.replace('  key: id', '  key: uid'));
    expect(ofRule(r, 'PK-L002')).toEqual([
      { file: r.file, line: 9, col: 8, rule: 'PK-L002', severity: 'error', message: 'subject.key: column uid of app."User" does not exist (did you mean id?)' },
    ]);
  });

  it('is quiet when the key exists', async () => {
    const db = await fixture();
    expect(ofRule(await lint(db, USER), 'PK-L002')).toEqual([]);
  });
});

describe('PK-L003 parent deleted before a child', () => {
  const cleanup = (first: string, second: string) => `version: 1
name: order
kind: cleanup
schema: app
steps:
${first}${second}`;
  const user = `  - table: User\n    where: id = 'u3'\n    cascades: [User, Post, Comment]\n`;
  const comment = `  - table: Comment\n    where: '"authorId" = ''u3'''\n`;

  it('errors when a later step deletes from a table referencing an earlier one by NO ACTION', async () => {
    const db = await fixture();
    const r = await lint(db, cleanup(user, comment));
    expect(ofRule(r, 'PK-L003')).toEqual([
      {
        file: r.file, line: 6, col: 12, rule: 'PK-L003', severity: 'error',
        message:
          'steps[0] deletes from app."User" before steps[1] deletes from app."Comment", whose foreign key "Comment_authorId_fkey" ("authorId") ON DELETE NO ACTION references app."User": the delete fails while such a row exists; move steps[1] before steps[0]',
      },
    ]);
  });

  it('says when two tables reference each other and no order works', async () => {
    const db = await fixture();
    const r = await lint(db, USER);
    expect(ofRule(r, 'PK-L003')).toEqual([
      {
        file: r.file, line: 22, col: 12, rule: 'PK-L003', severity: 'error',
        message:
          'steps[4] deletes from app."Team" before steps[5] deletes from app."User", whose foreign key "User_teamId_fkey" ("teamId") ON DELETE NO ACTION references app."Team": the delete fails while such a row exists; moving steps[5] first fails too (app."Team" references app."User" by foreign key "Team_ownerId_fkey" ("ownerId") ON DELETE NO ACTION): make one of the two foreign keys ON DELETE SET NULL or DEFERRABLE INITIALLY DEFERRED',
      },
    ]);
  });

  it('is quiet with children first, and for a foreign key checked at COMMIT', async () => {
    const db = await fixture();
    expect(ofRule(await lint(db, cleanup(comment, user)), 'PK-L003')).toEqual([]);
    await db.sql.unsafe(MAKE_USER_PURGE_CLEAN);
    expect(ofRule(await lint(db, USER), 'PK-L003')).toEqual([]);
  });
});

describe('PK-L004 coverage gap', () => {
  it('reports a table added after the policy was written, and the purge really fails on it', async () => {
    const db = await fixture();
    await db.sql.unsafe(MAKE_USER_PURGE_CLEAN);
    const before = await lint(db, USER);
    expect(before.diagnostics).toEqual([]);

    await db.sql.unsafe(`CREATE TABLE app."Like" ("userId" text NOT NULL REFERENCES app."User" (id)); INSERT INTO app."Like" VALUES ('u2')`);
    const after = await lint(db, USER);
    expect(ofRule(after, 'PK-L004')).toEqual([
      {
        file: after.file, line: 8, col: 10, rule: 'PK-L004', severity: 'error',
        message:
          'app."Like" references app."User" by foreign key "Like_userId_fkey" ("userId") ON DELETE NO ACTION, and no step removes from it or declares it in cascades: a row of it that references a removed row makes the purge fail; add a step for Like',
      },
    ]);
    expect(after.exitCode).toBe(1);

    const script = await renderCommand(after.file, { policiesDir: join(after.file, '..'), values: { user_id: 'u2' }, pairs: [] });
    const run = await runSimpleQuery(db.url, script);
    expect(run.ok ? 'committed' : run.error.message).toMatch(/violates foreign key constraint "Like_userId_fkey"/);
  });

  it('reports a table reached through another uncovered one, and one a cascade reaches only in part', async () => {
    const db = await fixture();
    const text = USER.replace(`  - table: audit.event_notes
    where: (event_id, event_at) IN (SELECT id, at FROM events WHERE "userId" IN :subject)
  - table: events
    where: '"userId" IN :subject'
`, '').replace(COMMENT_STEP, '');
    const r = await lint(db, text);
    expect(ofRule(r, 'PK-L004')).toEqual([
      {
        file: r.file, line: 8, col: 10, rule: 'PK-L004', severity: 'error',
        message:
          'app."Comment" is removed only where ON DELETE CASCADE reaches it (app."Post" <- app."Comment" ("Comment_postId_fkey")), but its foreign key "Comment_authorId_fkey" ("authorId") ON DELETE NO ACTION references app."User", which this policy deletes from: its other rows that reference removed rows make the purge fail; add a step for Comment',
      },
      {
        file: r.file, line: 8, col: 10, rule: 'PK-L004', severity: 'error',
        message:
          'app.events references app."User" by foreign key "events_userId_fkey" ("userId") ON DELETE NO ACTION, and no step removes from it or declares it in cascades: a row of it that references a removed row makes the purge fail; add a step for events',
      },
      {
        file: r.file, line: 8, col: 10, rule: 'PK-L004', severity: 'error',
        message:
          'audit.event_notes belongs to the subject through app."User" <- app.events ("events_userId_fkey") <- audit.event_notes (event_notes_event_id_event_at_fkey), but no step removes from it, declares it in cascades, or reaches it by ON DELETE CASCADE; add a step for audit.event_notes',
      },
    ]);
  });

  it('is quiet for a complete policy, and for a purge that keeps its subject', async () => {
    const db = await fixture();
    expect(ofRule(await lint(db, USER), 'PK-L004')).toEqual([]);
    const keepsUser = USER.slice(0, USER.indexOf('steps:')) + `steps:\n${LOGIN_STEP}`;
    expect(ofRule(await lint(db, keepsUser), 'PK-L004')).toEqual([]);
  });
});

describe('PK-L005 column named like the subject key without a foreign key', () => {
  it('warns about audit.login_attempts."userId" when no step removes from it', async () => {
    const db = await fixture();
    const r = await lint(db, USER.replace(LOGIN_STEP, ''));
    expect(ofRule(r, 'PK-L005')).toEqual([
      {
        file: r.file, line: 9, col: 8, rule: 'PK-L005', severity: 'warning',
        message:
          'audit.login_attempts."userId" is named like a key of app."User" but no foreign key says so, and no step removes from audit.login_attempts: if its rows belong to the subject, add a step for audit.login_attempts (a foreign key would let lint check it)',
      },
    ]);
  });

  it('is quiet when a step removes from that table', async () => {
    const db = await fixture();
    expect(ofRule(await lint(db, USER), 'PK-L005')).toEqual([]);
  });
});

describe('PK-L006 foreign key without a covering index', () => {
  it('warns with the CREATE INDEX CONCURRENTLY that fixes it, and the fix silences it', async () => {
    const db = await fixture();
    const r = await lint(db, USER);
    const fix = 'CREATE INDEX CONCURRENTLY "Comment_authorId_idx" ON app."Comment" ("authorId");';
    expect(ofRule(r, 'PK-L006')).toEqual([
      {
        file: r.file, line: 24, col: 12, rule: 'PK-L006', severity: 'warning',
        message: `app."Comment" has no index on ("authorId"), its foreign key "Comment_authorId_fkey" to app."User": every row this step removes from app."User" makes PostgreSQL scan app."Comment" for rows referencing it; fix: ${fix}`,
      },
    ]);
    await db.sql.unsafe(fix);
    expect(ofRule(await lint(db, USER), 'PK-L006')).toEqual([]);
  });

  it('is quiet when the plan deletes from no table an unindexed key references', async () => {
    const db = await fixture();
    // Covered in the other column order: audit.event_notes (event_at, event_id) for (event_id, event_at).
    expect(ofRule(await lint(db, POST), 'PK-L006')).toEqual([]);
  });
});

describe('PK-L007 / PK-L008 / PK-L009 wipe reach', () => {
  const wipe = (body: string) => `version: 1\nname: wipe\nkind: wipe\nschema: app\n${body}`;

  it('errors when TRUNCATE ... CASCADE reaches a keep table (composite key to a partitioned table), warns about an unlisted one', async () => {
    const db = await fixture();
    const r = await lint(db, wipe('wipe:\n  tables: [events, Post]\nkeep: [audit.event_notes]\n'));
    expect(r.diagnostics).toEqual([
      {
        file: r.file, line: 6, col: 20, rule: 'PK-L008', severity: 'warning',
        message:
          'TRUNCATE ... CASCADE also empties app."Comment", which is not listed: app."Post" <- app."Comment" ("Comment_postId_fkey"); list it in wipe.tables or wipe.reach if that is intended, or add it to keep to make the wipe refuse',
      },
      {
        file: r.file, line: 7, col: 8, rule: 'PK-L007', severity: 'error',
        message:
          "the wipe's TRUNCATE ... CASCADE empties this keep table: app.events <- audit.event_notes (event_notes_event_id_event_at_fkey); the script refuses with PK007. Take app.events out of the wipe, or change the foreign key",
      },
    ]);
  });

  it('is quiet about a reach the author reviewed (wipe.reach), not about a keep table', async () => {
    const db = await fixture();
    expect((await lint(db, wipe('wipe:\n  tables: [Post]\n  reach: [Comment]\n'))).diagnostics).toEqual([]);
    const kept = await lint(db, wipe('wipe:\n  tables: [events]\n  reach: [audit.event_notes]\nkeep: [audit.event_notes]\n'));
    expect(rulesOf(kept)).toEqual(['PK-L007']);
  });

  it('is quiet when every table reached is listed and no keep table is reached', async () => {
    const db = await fixture();
    expect((await lint(db, wipe('wipe:\n  tables: [Post, Comment]\nkeep: [audit.event_notes, Team]\n'))).diagnostics).toEqual([]);
  });

  it('errors when TRUNCATE ... RESTRICT would fail on an unlisted referencing table, quiet when it is listed', async () => {
    const db = await fixture();
    const r = await lint(db, wipe('wipe:\n  tables: [Post]\n  cascade: false\n'));
    expect(r.diagnostics).toEqual([
      {
        file: r.file, line: 6, col: 12, rule: 'PK-L009', severity: 'error',
        message:
          'TRUNCATE ... RESTRICT fails: app."Comment" references app."Post" by foreign key "Comment_postId_fkey" and is not listed; list it too, or set cascade: true (with keep for what must survive)',
      },
    ]);
    expect((await lint(db, wipe('wipe:\n  tables: [Post, Comment]\n  cascade: false\n'))).diagnostics).toEqual([]);
  });
});

describe('PK-L010 SQL that does not plan', () => {
  it('reports the PostgreSQL error of each where, lookup, preserve and expect at its YAML, and commits nothing', async () => {
    const db = await fixture();
    const before = await snapshot(db.sql);
    const r = await lint(db, `version: 1
name: bad-sql
kind: purge
schema: app
params:
  user_id: { type: text }
subject:
  table: User
  key: id
  lookup:
    - by: [user_id]
      where: id = 1
steps:
  - table: events
    where: userId IN :subject
  - table: Post
    where: '"authorId" IN :subject'
    cascades: [Comment]
preserve:
  - table: Post
    where: titel = 'keep'
expect:
  - name: no notes left
    query: SELECT count(*) FROM notes
    max: 0
`);
    // Each at the place the server points to (its error position mapped back through the
    // fragment): the '=' of the lookup, the unknown column, the missing relation.
    expect(ofRule(r, 'PK-L010')).toEqual([
      {
        file: r.file, line: 12, col: 17, rule: 'PK-L010', severity: 'error',
        message: 'subject.lookup[0].where: operator does not exist: text = integer (hint: No operator matches the given name and argument types. You might need to add explicit type casts.)',
      },
      {
        file: r.file, line: 15, col: 12, rule: 'PK-L010', severity: 'error',
        message: 'steps[0].where: column "userid" does not exist (hint: Perhaps you meant to reference the column "events.userId".)',
      },
      // Once, at the rule: the Post step's delete carries it too.
      {
        file: r.file, line: 21, col: 12, rule: 'PK-L010', severity: 'error',
        message: 'preserve[0].where: column "titel" does not exist (hint: Perhaps you meant to reference the column "Post.title".)',
      },
      { file: r.file, line: 24, col: 33, rule: 'PK-L010', severity: 'error', message: 'expect[0].query: relation "notes" does not exist' },
    ]);
    expect(await snapshot(db.sql)).toEqual(before);
    const [temp] = await db.sql<{ n: number }[]>`SELECT count(*)::int AS n FROM pg_class WHERE relname LIKE 'purgekit\\_%'`;
    expect(temp?.n).toBe(0);
  });

  it('is quiet when everything plans, and skips an optional step whose table is absent', async () => {
    const db = await fixture();
    expect(ofRule(await lint(db, USER), 'PK-L010')).toEqual([]);
    const optional = USER.replace(LOGIN_STEP, `  - table: reactions\n    optional: true\n    where: no_such_column IN :subject\n`);
    expect((await lint(db, optional)).diagnostics.filter((d) => d.rule === 'PK-L010' || d.rule === 'PK-L001')).toEqual([]);
  });
});

describe('PK-L011 undeclared cascade', () => {
  it('warns when a delete changes rows elsewhere that no step declares: SET NULL on a self-reference, CASCADE to a child', async () => {
    const db = await fixture();
    const user = await lint(db, USER.replace('    cascades: [User]\n', ''));
    expect(ofRule(user, 'PK-L011')).toEqual([
      {
        file: user.file, line: 24, col: 12, rule: 'PK-L011', severity: 'warning',
        message:
          'deleting from app."User" sets NULL in app."User" (app."User" <- app."User" ("User_invitedById_fkey"), ON DELETE SET NULL), and no step declares it in cascades: apply fails a run in which that changes a row; add cascades: [User] to this step',
      },
    ]);
    const post = await lint(db, POST.replace(`  - table: Comment\n    where: '"postId" IN :subject'\n`, ''));
    expect(ofRule(post, 'PK-L011')).toEqual([
      {
        file: post.file, line: 14, col: 12, rule: 'PK-L011', severity: 'warning',
        message:
          'deleting from app."Post" removes rows of app."Comment" (app."Post" <- app."Comment" ("Comment_postId_fkey"), ON DELETE CASCADE), and no step declares it in cascades: apply fails a run in which that changes a row; add cascades: [Comment] to this step, or a step for Comment before it',
      },
    ]);
  });

  it('is quiet when the cascade is declared or an earlier step emptied the child', async () => {
    const db = await fixture();
    expect(ofRule(await lint(db, USER), 'PK-L011')).toEqual([]);
    expect(ofRule(await lint(db, POST), 'PK-L011')).toEqual([]);
  });
});

describe('a policy lint passes runs', () => {
  it('purges one user completely: no row referencing it remains', async () => {
    const db = await fixture();
    await db.sql.unsafe(MAKE_USER_PURGE_CLEAN);
    const r = await lint(db, USER);
    expect(r.diagnostics).toEqual([]);
    const script = await renderCommand(r.file, { policiesDir: join(r.file, '..'), values: { user_id: 'u2' }, pairs: [] });
    const run = await runSimpleQuery(db.url, script);
    expect(run.ok ? 'committed' : run.error.message).toBe('committed');
    const [left] = await db.sql<{ n: number }[]>`
      SELECT (SELECT count(*) FROM app."User" WHERE id = 'u2' OR "invitedById" = 'u2')
           + (SELECT count(*) FROM app."Team" WHERE "ownerId" = 'u2')
           + (SELECT count(*) FROM app."Post" WHERE "authorId" = 'u2')
           + (SELECT count(*) FROM app."Comment" WHERE "authorId" = 'u2')
           + (SELECT count(*) FROM app.events WHERE "userId" = 'u2')
           + (SELECT count(*) FROM audit.login_attempts WHERE "userId" = 'u2') AS n`;
    expect(Number(left!.n)).toBe(0);
  });
});

describe('reporters', () => {
  it('text, json and gcc', async () => {
    const db = await fixture();
    const cycle =
      'steps[4] deletes from app."Team" before steps[5] deletes from app."User", whose foreign key "User_teamId_fkey" ("teamId") ON DELETE NO ACTION references app."Team": the delete fails while such a row exists; moving steps[5] first fails too (app."Team" references app."User" by foreign key "Team_ownerId_fkey" ("ownerId") ON DELETE NO ACTION): make one of the two foreign keys ON DELETE SET NULL or DEFERRABLE INITIALLY DEFERRED';
    const index =
      'app."Comment" has no index on ("authorId"), its foreign key "Comment_authorId_fkey" to app."User": every row this step removes from app."User" makes PostgreSQL scan app."Comment" for rows referencing it; fix: CREATE INDEX CONCURRENTLY "Comment_authorId_idx" ON app."Comment" ("authorId");';

    const text = await lint(db, USER, { reporter: 'text' });
    expect(text.output).toBe(`${text.file}:22:12: error PK-L003: ${cycle}\n${text.file}:24:12: warning PK-L006: ${index}\n1 error and 1 warning in 1 policy\n`);

    const gcc = await lint(db, USER, { reporter: 'gcc' });
    expect(gcc.output).toBe(`${gcc.file}:22:12: error: ${cycle} [PK-L003]\n${gcc.file}:24:12: warning: ${index} [PK-L006]\n`);

    const json = await lint(db, USER, { reporter: 'json' });
    expect(JSON.parse(json.output)).toEqual({
      version: 1,
      policies: 1,
      errors: 1,
      warnings: 1,
      diagnostics: [
        { file: json.file, line: 22, col: 12, rule: 'PK-L003', severity: 'error', message: cycle },
        { file: json.file, line: 24, col: 12, rule: 'PK-L006', severity: 'warning', message: index },
      ],
    });

    await db.sql.unsafe(MAKE_USER_PURGE_CLEAN);
    expect((await lint(db, USER, { reporter: 'text' })).output).toBe('no problems in 1 policy\n');
    expect((await lint(db, USER, { reporter: 'gcc' })).output).toBe('');
  });
});

describe('exit codes', () => {
  it('0 clean, 1 on an error, warnings fail only with strict', async () => {
    const db = await fixture();
    expect((await lint(db, POST)).exitCode).toBe(0);
    expect((await lint(db, POST, { strict: true })).exitCode).toBe(0);

    const warnsOnly = POST.replace(`  - table: Comment\n    where: '"postId" IN :subject'\n`, '');
    const warned = await lint(db, warnsOnly);
    expect(rulesOf(warned)).toEqual(['PK-L011']);
    expect(warned.exitCode).toBe(0);
    expect((await lint(db, warnsOnly, { strict: true })).exitCode).toBe(1);

    const errs = await lint(db, USER.replace('  key: id', '  key: uid'));
    expect(errs.exitCode).toBe(1);
  });

  it('2 for an invalid policy, before connecting; 5 when the server cannot be reached', async () => {
    const { dir } = policyDir(POST.replace('kind: purge', 'kind: purgee'));
    await expect(lintCommand({ paths: [dir], connection: 'postgres://nobody@127.0.0.1:1/none', reporter: 'text', strict: false })).rejects.toBeInstanceOf(InvalidPolicyError);

    const ok = policyDir(POST);
    const error = await lintCommand({ paths: [ok.dir], connection: 'postgres://nobody:s3cret@127.0.0.1:1/none', reporter: 'text', strict: false }).catch((e: unknown) => e);
    expect(error).toMatchObject({ exitCode: 5 });
    expect((error as Error).message).toMatch(/^cannot connect to none \(nobody@127\.0\.0\.1:1\)/);
    expect((error as Error).message).not.toContain('s3cret');
  });
});

// Pure rules on a hand-built catalog: no database.

function table(qualified: string, extra: Partial<Table> = {}): Table {
  const [schema, name] = splitQualified(qualified);
  return { qualified, schema, name, partitioned: false, partitions: [], columns: [], indexes: [], estimatedRows: 0, ...extra };
}

function fk(name: string, from: string, columns: string[], to: string, onDelete: ForeignKey['onDelete'], indexed = true): ForeignKey {
  return { name, table: from, columns, references: to, referencedColumns: ['id'], onDelete, nullable: false, indexed };
}

function policyOf(text: string): { policy: Policy; file: ReturnType<typeof parsePolicyText> } {
  const file = parsePolicyText('p.yaml', text);
  const result = validatePolicy(file);
  if (!result.ok) throw new Error(result.diagnostics.map((d) => d.message).join('\n'));
  return { policy: result.policy, file };
}

describe('rules without a database', () => {
  it('PK-L003 follows ON DELETE CASCADE: a parent deleted by cascade before a child that blocks it', () => {
    const catalog: Catalog = {
      tables: new Map(['public.accounts', 'public.projects', 'public.invoices'].map((t) => [t, table(t)])),
      foreignKeys: [fk('projects_account_fkey', 'public.projects', ['account_id'], 'public.accounts', 'cascade'), fk('invoices_project_fkey', 'public.invoices', ['project_id'], 'public.projects', 'restrict')],
    };
    const { policy, file } = policyOf('version: 1\nname: x\nkind: cleanup\nsteps:\n  - table: accounts\n    all_rows: true\n  - table: invoices\n    all_rows: true\n');
    expect(stepOrder({ catalog, deferred: new Set() }, policy, file)).toEqual([
      {
        file: 'p.yaml', line: 5, col: 12, rule: 'PK-L003', severity: 'error',
        message:
          'steps[0] deletes from public.accounts, which removes public.projects by ON DELETE CASCADE (public.accounts <- public.projects (projects_account_fkey)), before steps[1] deletes from public.invoices, whose foreign key invoices_project_fkey (project_id) ON DELETE RESTRICT references public.projects: the delete fails while such a row exists; move steps[1] before steps[0]',
      },
    ]);
  });

  it('PK-L006 on a partitioned table: the index is built on each partition concurrently and attached', () => {
    const events = table('app.events', { partitioned: true, partitions: ['app.events_2024', 'app."Events 2025"'] });
    const catalog: Catalog = { tables: new Map([['app.events', events]]), foreignKeys: [] };
    expect(createIndexFix(catalog, fk('events_user_fkey', 'app.events', ['userId'], 'app.users', 'no action', false))).toBe(
      [
        'CREATE INDEX "events_userId_idx" ON ONLY app.events ("userId");',
        'CREATE INDEX CONCURRENTLY "events_2024_userId_idx" ON app.events_2024 ("userId");',
        'ALTER INDEX app."events_userId_idx" ATTACH PARTITION app."events_2024_userId_idx";',
        'CREATE INDEX CONCURRENTLY "Events 2025_userId_idx" ON app."Events 2025" ("userId");',
        'ALTER INDEX app."events_userId_idx" ATTACH PARTITION app."Events 2025_userId_idx";',
      ].join(' '),
    );
  });

  it('names that look like the subject key', () => {
    expect([...keyLikeNames('User', 'id')].sort()).toEqual(['userid']);
    expect([...keyLikeNames('user_profiles', 'user_id')].sort()).toEqual(['userid', 'userprofileid', 'userprofilesid', 'userprofilesuserid', 'userprofileuserid']);
    expect([...keyLikeNames('companies', 'id')].sort()).toEqual(['companiesid', 'companyid']);
  });

  it('a policy on an empty catalog reports every table missing and nothing else', () => {
    const { policy, file } = policyOf(USER);
    const found = lintPolicy({ catalog: { tables: new Map(), foreignKeys: [] }, deferred: new Set() }, policy, file);
    expect(new Set(found.map((d) => d.rule))).toEqual(new Set(['PK-L001']));
    expect(found.filter((d) => d.severity === 'error')).toHaveLength(8);
  });
});
