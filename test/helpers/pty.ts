/**
 * The built CLI driven through a real pseudo-terminal: util-linux `script` runs it on a pty
 * (so process.stdin.isTTY and process.stderr.isTTY are true, as at an operator's terminal), our
 * pipe to script's stdin is what the operator types, script's stdout is what the terminal
 * shows (stdout and stderr of the CLI alike). No native module: script is part of util-linux.
 */
import { spawn, spawnSync } from 'node:child_process';
import { BIN } from '../run-helpers.js';
import { ROOT } from './scripts.js';

export function hasScript(): boolean {
  return spawnSync('script', ['--version'], { encoding: 'utf8' }).status === 0;
}

/** Keys as a terminal sends them. */
export const KEY = { enter: '\r', down: '\x1b[B', up: '\x1b[A', ctrlC: '\x03' } as const;

export interface PtySession {
  /** What the terminal showed so far, escape sequences removed. */
  readonly screen: () => string;
  /** What the terminal was sent so far, as is (escape sequences included). */
  readonly raw: () => string;
  /** Resolves once the screen shows `text` after everything waited for before; rejects (with the screen) if the CLI exits first. */
  readonly waitFor: (text: string | RegExp) => Promise<void>;
  readonly type: (keys: string) => void;
  readonly kill: () => void;
  /** The exit code (script -e passes the CLI's on) and the whole screen. */
  readonly exited: Promise<{ code: number; screen: string }>;
}

const quote = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;

/** ANSI CSI/OSC sequences and carriage returns out, so that assertions read text. */
export function plain(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/\x1b\[[0-9;?]*[ -/]*[@-~]/g, '').replace(/\x1b\][^\x07]*\x07/g, '').replace(/\x1b[()][0-9A-B]/g, '').replace(/\r/g, '');
}

export function inPty(args: readonly string[], options: { cwd?: string; env?: Record<string, string> } = {}): PtySession {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (k !== 'DATABASE_URL' && !k.startsWith('PG')) env[k] = v;
  Object.assign(env, { TERM: 'xterm', NO_COLOR: '1' }, options.env);
  // A pty made from a pipe has no size: give it one, as a terminal window would.
  const command = `stty cols 160 rows 50; exec ${[process.execPath, BIN, ...args].map(quote).join(' ')}`;
  const child = spawn('script', ['-qfec', command, '/dev/null'], { cwd: options.cwd ?? ROOT, env, stdio: ['pipe', 'pipe', 'pipe'] });
  let raw = '';
  let seen = 0;
  const waiters: { test: (s: string) => number; resolve: () => void; reject: (e: Error) => void }[] = [];
  let done = false;
  const check = () => {
    const screen = plain(raw);
    while (waiters.length) {
      const at = waiters[0]!.test(screen.slice(seen));
      if (at < 0) break;
      seen += at;
      waiters.shift()!.resolve();
    }
    if (done) for (const w of waiters.splice(0)) w.reject(new Error(`the CLI exited before the terminal showed what was waited for; it showed:\n${screen}`));
  };
  child.stdout.setEncoding('utf8').on('data', (d: string) => ((raw += d), check()));
  child.stderr.setEncoding('utf8').on('data', (d: string) => ((raw += d), check()));
  const exited = new Promise<{ code: number; screen: string }>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => {
      done = true;
      check();
      resolve({ code: code ?? -1, screen: plain(raw) });
    });
  });
  return {
    screen: () => plain(raw),
    raw: () => raw,
    waitFor: (text) =>
      new Promise<void>((resolve, reject) => {
        const test = (s: string) => {
          if (typeof text === 'string') {
            const i = s.indexOf(text);
            return i < 0 ? -1 : i + text.length;
          }
          const m = text.exec(s);
          return m ? m.index + m[0].length : -1;
        };
        // Not a timed assertion: a prompt that never comes fails with what the terminal showed instead.
        const timer = setTimeout(() => reject(new Error(`the terminal did not show ${String(text)} within 20 s; it showed:\n${plain(raw)}`)), 20_000);
        waiters.push({ test, resolve: () => (clearTimeout(timer), resolve()), reject: (e) => (clearTimeout(timer), reject(e)) });
        check();
      }),
    type: (keys) => void child.stdin.write(keys),
    kill: () => void child.kill('SIGKILL'),
    exited,
  };
}
