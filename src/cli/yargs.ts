/**
 * yargs, started without the half of its load time that goes to terminal text width.
 *
 * `import 'yargs'` loads its Node shim, whose string-width and wrap-ansi (twice: cliui pins
 * another string-width) compile large Unicode property regexes: about 40 ms of the 80 ms yargs
 * takes, for help text that is ASCII. This module gives yargs' own factory a shim with the
 * same Node parts and a plain-text width and word wrap; it falls back to `import 'yargs'` if a
 * yargs release moves its files (README: Performance; npm run bench:startup).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, dirname, extname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { inspect } from 'node:util';
import type { Argv } from 'yargs';

type Factory = (processArgs: readonly string[], cwd?: string) => Argv;

/** A new yargs for argv. */
export async function yargsFor(argv: readonly string[]): Promise<Argv> {
  const factory = await leanFactory().catch(async () => ((await import('yargs')).default as unknown as Factory));
  return factory(argv);
}

async function leanFactory(): Promise<Factory> {
  // yargs' exports map hides build/: reach its files from its resolved entry, and its own
  // dependencies through a require rooted there, so the versions are the ones yargs installed.
  const entry = fileURLToPath(import.meta.resolve('yargs'));
  const from = createRequire(entry);
  const near = (pkg: string, file: string) => {
    const found = from.resolve(pkg);
    const marker = `${sep}node_modules${sep}${pkg}${sep}`;
    return pathToFileURL(join(found.slice(0, found.lastIndexOf(marker) + marker.length), file)).href;
  };
  // y18n has one bundled CommonJS file: required, it is one module to load instead of two.
  const y18n = from('y18n') as (opts: object) => unknown;
  const [{ YargsFactory }, { default: Parser }, { cliui }, { getProcessArgvBin }] = await Promise.all([
    import(pathToFileURL(join(dirname(entry), 'build/lib/yargs-factory.js')).href),
    import(pathToFileURL(from.resolve('yargs-parser')).href),
    import(near('cliui', 'build/lib/index.js')),
    import(pathToFileURL(join(dirname(entry), 'build/lib/utils/process-argv.js')).href),
  ]);
  const mixin = { stringWidth: width, stripAnsi, wrap };
  const shim = {
    // yargs asserts its own invariants with these; node:assert would cost more to load than all of them.
    assert: { notStrictEqual: (a: unknown, b: unknown, message?: string) => check(a !== b, message), strictEqual: (a: unknown, b: unknown, message?: string) => check(a === b, message) },
    cliui: (opts: object) => cliui(opts, mixin),
    // Used to find package.json for a bare .version() and for commandDir(): purgekit uses neither.
    findUp: () => undefined,
    getEnv: (key: string) => process.env[key],
    inspect,
    getProcessArgvBin,
    mainFilename: process.cwd(),
    Parser,
    path: { basename, dirname, extname, relative, resolve, join },
    process: {
      argv: () => process.argv,
      cwd: process.cwd,
      emitWarning: (warning: string, type: string) => process.emitWarning(warning, type),
      execPath: () => process.execPath,
      exit: (code: number) => process.exit(code),
      nextTick: process.nextTick,
      stdColumns: typeof process.stdout.columns !== 'undefined' ? process.stdout.columns : null,
    },
    readFileSync,
    readdirSync,
    require: from,
    getCallerFile: () => entry,
    stringWidth: width,
    y18n: y18n({ directory: join(dirname(entry), 'locales'), updateFiles: false }),
  };
  return YargsFactory(shim) as Factory;
}

function check(ok: boolean, message = 'yargs: internal assertion failed'): void {
  if (!ok) throw new Error(message);
}

const ANSI = /\u001b\[[0-9;]*m/g;
function stripAnsi(text: string): string {
  return text.replace(ANSI, '');
}

/** Columns of text, counting code points: exact for the ASCII of help text, close elsewhere. */
function width(text: string): number {
  let n = 0;
  for (const _ of stripAnsi(text)) n++;
  return n;
}

/** wrap-ansi's hard wrap with trimming, for text without escape codes: words to rows of at most columns. */
function wrap(text: string, columns: number): string {
  return text.split('\n').map((line) => wrapLine(line, columns)).join('\n');
}

function wrapLine(line: string, columns: number): string {
  if (line.trim() === '') return '';
  const rows = [''];
  line.split(' ').forEach((word, i) => {
    rows[rows.length - 1] = rows.at(-1)!.trimStart();
    let length = width(rows.at(-1)!);
    if (i !== 0 && length > 0) {
      rows[rows.length - 1] += ' ';
      length++;
    }
    if (width(word) > columns) {
      for (const char of word) {
        if (width(rows.at(-1)!) >= columns) rows.push('');
        rows[rows.length - 1] += char;
      }
      return;
    }
    if (length + width(word) > columns && length > 0 && word.length > 0) rows.push('');
    rows[rows.length - 1] += word;
  });
  return rows.map((row) => row.trimEnd()).join('\n');
}
