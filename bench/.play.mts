import { startEmbedded } from '../test/harness/embedded.js';
import postgres from 'postgres';
const server = await startEmbedded({});
const sql = postgres(server.url, { onnotice: () => {}, max: 1 });
await sql.unsafe(`CREATE TABLE events (id bigserial PRIMARY KEY, at timestamptz NOT NULL, user_email text, message text, payload jsonb, tags text[]);
    INSERT INTO events (at, user_email, message, payload, tags)
    SELECT '2025-01-01'::timestamptz + n * interval '1 second', 'user' || (n % 10000) || '@example.com',
           'request ' || md5(n::text) || ' served in ' || (n % 997) || ' ms for account ' || (n % 10000),
           jsonb_build_object('accountId', (n % 10000)::text, 'client', 'web', 'meta', jsonb_build_object('ip', '10.0.' || (n % 255) || '.' || (n % 251), 'ua', 'Mozilla/5.0')),
           ARRAY['tag' || (n % 50), 'tag' || (n % 7)]
    FROM generate_series(1, 200000) AS n;`);
await sql.unsafe('VACUUM ANALYZE');
console.log(await sql`SELECT datcollate, datctype, datlocprovider FROM pg_database WHERE datname = current_database()`);
const P = `ARRAY['%residue.person@example.com%', '%residue\\_person%']`;
const Q: Record<string, string> = {
  count: `SELECT count(*) FROM events`,
  cols: `SELECT count(*) FROM events WHERE user_email IS NULL AND message IS NULL AND payload IS NULL AND tags IS NULL`,
  lowermsg: `SELECT count(*) FROM events WHERE lower(message) LIKE ANY(${P})`,
  ilikemsg: `SELECT count(*) FROM events WHERE message ILIKE ANY(${P})`,
  strposmsg: `SELECT count(*) FROM events WHERE strpos(lower(message), 'residue.person@example.com') > 0 OR strpos(lower(message), 'residue_person') > 0`,
  likemsg_nolower: `SELECT count(*) FROM events WHERE message LIKE ANY(${P})`,
  jsontext: `SELECT count(*) FROM events WHERE lower(payload::text) LIKE ANY(${P})`,
  jsontext_nolower: `SELECT count(*) FROM events WHERE payload::text LIKE ANY(${P})`,
  jsonpath: `SELECT count(*) FROM events WHERE payload @? 'strict $.** ? (@ == "-1")'`,
  arr: `SELECT count(*) FROM events WHERE lower(array_to_string(tags, chr(31))) LIKE ANY(${P})`,
  email: `SELECT count(*) FROM events WHERE lower(user_email) LIKE ANY(${P})`,
  concat: `SELECT count(*) FROM events WHERE lower(concat_ws(chr(31), user_email, message, payload::text, array_to_string(tags, chr(31)))) LIKE ANY(${P})`,
  copy_like: `SELECT count(*) FROM events WHERE length(concat_ws(chr(31), user_email, message, payload::text, tags::text)) < 0`,
};
for (const [name, q] of Object.entries(Q)) {
  const times: number[] = [];
  for (let i = 0; i < 3; i++) { const t = performance.now(); await sql.unsafe(q); times.push(performance.now() - t); }
  console.log(name.padEnd(18), Math.min(...times).toFixed(0), 'ms');
}
await sql.end(); await server.stop(); process.exit(0);
