import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createTestDatabase } from './harness/db.js';
import { project, purgekit, tempAuditLog, why } from './run-helpers.js';

/**
 * Issue 14, item 3: every column type that can hold an identifying value is searched: text,
 * varchar, char, citext, json, jsonb, text[] and varchar[], and domains over them.
 */
const SCHEMA = `
CREATE EXTENSION IF NOT EXISTS citext;
CREATE DOMAIN email_address AS text CHECK (VALUE LIKE '%@%');
CREATE DOMAIN doc AS jsonb;
CREATE TABLE users (id integer PRIMARY KEY, email text NOT NULL);
CREATE TABLE fixed (id serial PRIMARY KEY, code char(30));
CREATE TABLE ci (id serial PRIMARY KEY, email citext);
CREATE TABLE dom (id serial PRIMARY KEY, contact email_address, body doc);
CREATE TABLE plainjson (id serial PRIMARY KEY, body json);
CREATE TABLE arrays (id serial PRIMARY KEY, emails varchar(100)[], ids text[]);
INSERT INTO users VALUES (42, 'alice@example.com'), (7, 'bob@example.com');
INSERT INTO fixed (code) VALUES ('alice@example.com'), ('bob@example.com');
INSERT INTO ci (email) VALUES ('Alice@Example.com'), ('bob@example.com');
INSERT INTO dom (contact, body) VALUES ('ALICE@example.com', '{"who": {"id": 42}}'), ('bob@example.com', '{"who": {"id": 7}}');
INSERT INTO plainjson (body) VALUES ('{"list": [{"mail": "alice@example.com"}]}'), ('{"list": []}');
INSERT INTO arrays (emails, ids) VALUES ('{carol@example.com,alice@example.com}', '{1,42}'), ('{bob@example.com}', '{7}');
`;

const POLICY = `version: 1
name: purge-typed-user
kind: purge
params:
  user_id: { type: integer }
subject:
  table: users
  key: id
  lookup:
    - by: [user_id]
      where: id = :user_id
  identifiers: [email]
steps:
  - table: users
    where: id IN :subject
`;

describe('purgekit residue: the column types searched', () => {
  it('char(n), citext, a domain over text, a domain over jsonb, json, varchar[] and text[]', async () => {
    const db = await createTestDatabase(SCHEMA);
    const dir = project();
    const policy = join(dir, 'policies', 'purge-typed-user.yaml');
    writeFileSync(policy, POLICY);
    const r = await purgekit(['residue', policy, '--user-id', '42', '--connection', db.url, '--json', '--audit-log', tempAuditLog()]);
    expect(r.code, why(r)).toBe(4);
    const json = JSON.parse(r.stdout) as { findings: { table: string; column: string; kind: string; path: string | null; value: string; rows: number }[] };
    const found = json.findings.map((f) => `${f.table}.${f.column} ${f.kind}${f.path ? ` ${f.path}` : ''} ${f.value} ${f.rows}`).sort();
    expect(found).toEqual([
      'public.arrays.emails array-element email 1',
      'public.arrays.ids array-element id 1',
      'public.ci.email case-insensitive email 1',
      'public.dom.body json who.id id 1',
      'public.dom.contact case-insensitive email 1',
      'public.fixed.code exact email 1',
      'public.plainjson.body json list[*].mail email 1',
    ]);
  });
});
