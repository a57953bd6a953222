/**
 * npm run bench:startup: how long a purgekit process takes to start and finish, as a ratio of
 * `node -e 0` measured in the same run (issue 10, item 4: each command loads only what it needs).
 *
 * Each round runs every case once, in turn, so that a busy machine slows all of them alike; a
 * case's figure is the median wall time of its rounds (spawnSync, performance.now()), and its
 * ratio the median of its per-round ratios to `node -e 0` of the same round (a machine whose
 * speed drifts between rounds moves both alike). Then each case runs once more with a module
 * hook that names the npm packages it loads.
 *
 * Targets: --help and --version <= 2x, validate of one policy <= 3.5x, compile of 200 policies
 * (copies of nexus-purge-user under new names, into an empty directory each round) <= 1 s of
 * wall time; the other rows have none.
 *
 * Then the cost of validate, phase by phase, inside one process (median over the rounds, each
 * round a fresh process): what yargs (as src/cli/yargs.ts starts it), yaml and libpg-query
 * (with the parser's WASM) take to load, the rest of validate's modules (the precompiled schema
 * included), and validating the policy. The CLI overlaps the WASM compile with the loading of
 * yargs and yaml (src/cli.ts), so the phases add up to more than the command takes.
 *
 * Environment: BENCH_STARTUP_ROUNDS (default 20, plus 2 warm-up rounds not counted).
 * Run with `npm run bench:startup` (builds dist/ first: it spawns dist/cli.js).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PACKAGES_HOOK as HOOK } from '../test/helpers/packagesHook.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const BIN = join(ROOT, 'dist', 'cli.js');
const ROUNDS = Number(process.env['BENCH_STARTUP_ROUNDS'] ?? 20);
const WARMUP = 2;

interface Case {
  readonly label: string;
  readonly args: readonly string[];
  readonly target?: number;
  /** Exit code the command must end with (a wrong one means the figure measures a failure). */
  readonly exit: number;
  /** A target in wall milliseconds rather than as a ratio. */
  readonly targetMs?: number;
  /** Run before each timed run, untimed. */
  readonly before?: () => void;
}

/** 200 policies: nexus-purge-user under 200 names, compiled into an empty directory each time. */
const MANY = mkdtempSync(join(tmpdir(), 'purgekit-bench-startup-'));
const nexus = readFileSync(join(ROOT, 'policies', 'nexus-purge-user.yaml'), 'utf8');
mkdirSync(join(MANY, 'policies'));
for (let i = 1; i <= 200; i++) writeFileSync(join(MANY, 'policies', `p${i}.yaml`), nexus.replace(/^name: nexus-purge-user$/m, `name: nexus-purge-user-${i}`));
process.on('exit', () => rmSync(MANY, { recursive: true, force: true }));

const BASELINE: Case = { label: 'node -e 0', args: ['-e', '0'], exit: 0 };
const CASES: readonly Case[] = [
  BASELINE,
  { label: 'purgekit --help', args: [BIN, '--help'], target: 2, exit: 0 },
  { label: 'purgekit --version', args: [BIN, '--version'], target: 2, exit: 0 },
  { label: 'purgekit validate <one policy>', args: [BIN, 'validate', 'policies/nexus-purge-user.yaml'], target: 3.5, exit: 0 },
  { label: 'purgekit validate (9 policies)', args: [BIN, 'validate'], exit: 0 },
  { label: 'purgekit apply <policy> --help', args: [BIN, 'apply', 'nexus-purge-user', '--help'], exit: 0 },
  { label: 'completion of apply <policy> --', args: [BIN, '--get-yargs-completions', 'apply', 'nexus-purge-user', '--'], exit: 0 },
  { label: 'purgekit compile --check', args: [BIN, 'compile', '--check'], exit: 0 },
  {
    label: 'purgekit compile (200 policies)',
    args: [BIN, 'compile', join(MANY, 'policies'), '--out', join(MANY, 'generated')],
    exit: 0,
    targetMs: 1000,
    before: () => rmSync(join(MANY, 'generated'), { recursive: true, force: true }),
  },
];

function runOnce(c: Case, extra: readonly string[] = []): { ms: number; stderr: string } {
  c.before?.();
  const started = performance.now();
  const result = spawnSync(process.execPath, [...extra, ...c.args], { cwd: ROOT, encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } });
  const ms = performance.now() - started;
  if (result.status !== c.exit) throw new Error(`${c.label}: exit ${result.status} (expected ${c.exit})\n${result.stderr}`);
  return { ms, stderr: result.stderr };
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

const DIRECT = new Set(['yargs', 'yaml', 'ajv', 'libpg-query', 'sql-formatter', 'postgres']);
function packagesOf(c: Case): string {
  if (c === BASELINE) return '';
  const { stderr } = runOnce(c, ['--import', HOOK]);
  const names = new Set([...stderr.matchAll(/^\[pkg\] (\S+)$/gm)].map((m) => m[1]!).filter((n) => DIRECT.has(n)));
  return [...DIRECT].filter((n) => names.has(n)).join(', ') || '(none)';
}

if (!existsSync(BIN)) throw new Error(`${BIN} is missing: run npx tsc -p . first`);
const times = new Map(CASES.map((c) => [c, [] as number[]]));
const ratios = new Map(CASES.map((c) => [c, [] as number[]]));
for (let round = 0; round < WARMUP + ROUNDS; round++) {
  const round_ = new Map(CASES.map((c) => [c, runOnce(c).ms]));
  if (round < WARMUP) continue;
  for (const c of CASES) {
    times.get(c)!.push(round_.get(c)!);
    ratios.get(c)!.push(round_.get(c)! / round_.get(BASELINE)!);
  }
}
const base = median(times.get(BASELINE)!);
const rows = CASES.map((c) => {
  const ms = median(times.get(c)!);
  const ratio = median(ratios.get(c)!);
  const met = c.target !== undefined ? ratio <= c.target : c.targetMs !== undefined ? ms <= c.targetMs : undefined;
  const target = c.target !== undefined ? `<= ${c.target}x` : c.targetMs !== undefined ? `<= ${c.targetMs / 1000} s` : '';
  return [c.label, `${ms.toFixed(0)} ms`, `${ratio.toFixed(2)}x`, target, met === undefined ? '' : met ? 'met' : 'NOT met', packagesOf(c)];
});
const header = ['command', 'median', 'ratio', 'target', '', 'packages loaded'];
const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
const line = (cells: readonly string[]) => cells.map((cell, i) => (i === 1 || i === 2 ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!))).join('  ').trimEnd();
console.log(`startup, median of ${ROUNDS} rounds (node ${process.version}, load average ${loadavg()[0]!.toFixed(1)}); ratio: median of each round's time over node -e 0 in that round`);
console.log(line(header));
for (const row of rows) console.log(line(row));

/** Each phase's milliseconds, as one child measures them; the phases run in this order. */
const PHASES: readonly (readonly [string, string])[] = [
  ['load yargs (src/cli/yargs.ts)', "await (await import('./dist/cli/yargs.js')).yargsFor([]);"],
  ['load yaml', "await import('yaml');"],
  ['load libpg-query + compile its WASM', "await (await import('./dist/sql/parser.js')).loadParser();"],
  ["load validate's own modules (schema precompiled)", "v = await import('./dist/validate/validateFiles.js');"],
  ['validate nexus-purge-user.yaml', "await v.validateFiles(['policies/nexus-purge-user.yaml']);"],
];
const script = [
  'let v; const out = []; let last = performance.now();',
  ...PHASES.map(([, code]) => `${code} out.push(performance.now() - last); last = performance.now();`),
  'console.log(JSON.stringify(out));',
].join('\n');
const phases = PHASES.map(() => [] as number[]);
for (let round = 0; round < Math.max(5, Math.ceil(ROUNDS / 2)); round++) {
  const result = spawnSync(process.execPath, ['--input-type=module', '-e', script], { cwd: ROOT, encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`breakdown: exit ${result.status}\n${result.stderr}`);
  (JSON.parse(result.stdout) as number[]).forEach((ms, i) => phases[i]!.push(ms));
}
console.log('');
console.log(`validate of one policy, phase by phase in one process (median of ${phases[0]!.length}; node -e 0 took ${base.toFixed(0)} ms above)`);
const width = Math.max(...PHASES.map(([label]) => label.length));
PHASES.forEach(([label], i) => console.log(`${label.padEnd(width)}  ${median(phases[i]!).toFixed(0).padStart(5)} ms`));
