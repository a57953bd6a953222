-- The seed-000 (Nexus) schema for the benchmark: the tables of test/fixtures/nexus.sql, same
-- names, columns and constraints, plus
--   * ai_message_attachments (the policy's optional step 2), so that every step deletes rows;
--   * an index on every foreign-key column, as a production schema has. Without them every
--     deleted parent row costs a full scan of each child table (FK check or ON DELETE CASCADE),
--     for apply and psql alike, and the benchmark would measure missing indexes.
-- bench/generate.ts runs the part before the "@after-load" marker, loads the data, then the rest
-- (an index is built faster once than maintained row by row).

CREATE TABLE user_profiles (
  user_id text PRIMARY KEY,
  email text,
  business_email text,
  personal_email text,
  role text NOT NULL DEFAULT 'user',
  created_at timestamptz NOT NULL DEFAULT '2025-01-01'
);
CREATE TABLE companies (
  id serial PRIMARY KEY,
  name text NOT NULL,
  owner_id text REFERENCES user_profiles (user_id)
);
CREATE TABLE company_members (
  company_id integer NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
  user_id text NOT NULL REFERENCES user_profiles (user_id),
  PRIMARY KEY (company_id, user_id)
);
CREATE TABLE ai_conversations (id serial PRIMARY KEY, user_id text NOT NULL REFERENCES user_profiles (user_id), title text);
CREATE TABLE ai_messages (id serial PRIMARY KEY, conversation_id integer NOT NULL REFERENCES ai_conversations (id), body text);
CREATE TABLE ai_message_attachments (id serial PRIMARY KEY, conversation_id integer NOT NULL REFERENCES ai_conversations (id), filename text, size_bytes integer);
CREATE TABLE ai_memories (id serial PRIMARY KEY, user_id text NOT NULL REFERENCES user_profiles (user_id), note text);
CREATE TABLE oauth_tokens (id serial PRIMARY KEY, user_id text NOT NULL REFERENCES user_profiles (user_id), provider text);
CREATE TABLE user_integrations (id serial PRIMARY KEY, user_id text NOT NULL REFERENCES user_profiles (user_id), kind text);
CREATE TABLE business_health_snapshots (id serial PRIMARY KEY, user_id text NOT NULL REFERENCES user_profiles (user_id), score integer);
CREATE TABLE onboarding_progress (user_id text PRIMARY KEY REFERENCES user_profiles (user_id), step integer);
CREATE TABLE user_preferences (user_id text PRIMARY KEY REFERENCES user_profiles (user_id), theme text);
CREATE TABLE user_organizations (user_id text NOT NULL REFERENCES user_profiles (user_id), org text NOT NULL);
-- The fixture's analytics events (no foreign key: nexus-purge-user deletes them, or anonymizes them with
-- --anonymize); empty here, so both sides of the bench pay only the indexed lookup.
CREATE TABLE product_events (id bigserial PRIMARY KEY, actor_id text, actor_email text, ip inet, event text NOT NULL);

-- @after-load: indexes on the foreign-key columns (and the fixture's lower(email) index).
CREATE INDEX ON user_profiles (lower(email));
CREATE INDEX ON companies (owner_id);
CREATE INDEX ON company_members (user_id);
CREATE INDEX ON ai_conversations (user_id);
CREATE INDEX ON ai_messages (conversation_id);
CREATE INDEX ON ai_message_attachments (conversation_id);
CREATE INDEX ON ai_memories (user_id);
CREATE INDEX ON oauth_tokens (user_id);
CREATE INDEX ON user_integrations (user_id);
CREATE INDEX ON business_health_snapshots (user_id);
CREATE INDEX ON user_organizations (user_id);
CREATE INDEX ON product_events (actor_id);
