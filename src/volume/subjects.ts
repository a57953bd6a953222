/**
 * A subjects file for `plan|apply <purge policy> --subjects-from <file|->`: one subject per
 * line, CSV with a header naming one lookup's params, or JSON lines with the same keys. Read as
 * a stream, line by line (never whole into memory), twice: once to validate every line before
 * anything is deleted, once to run. Standard input is spooled to a temporary file first, since
 * it cannot be read twice.
 */
import { createReadStream, createWriteStream, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { UsageError } from '../core/errors.js';
import type { Policy } from '../policy.js';
import { didYouMean } from '../validate/didYouMean.js';
import { checkValue } from '../values.js';

export interface Subject {
  /** 1-based line of the file. */
  readonly line: number;
  /** param name (snake_case) -> value as written. */
  readonly values: ReadonlyMap<string, string>;
}

/** Every problem of a subjects file, located `file:line: message`. */
export class SubjectsFileError extends UsageError {
  constructor(readonly problems: readonly string[]) {
    super(problems.slice(0, 20).join('\n') + (problems.length > 20 ? `\n(${problems.length - 20} more problems)` : ''));
  }
}

/** `-` (standard input) copied to a temporary file; any other path as given. */
export async function subjectsPath(given: string): Promise<{ path: string; label: string }> {
  if (given !== '-') return { path: given, label: given };
  const path = join(mkdtempSync(join(tmpdir(), 'purgekit-subjects-')), 'stdin');
  await pipeline(process.stdin, createWriteStream(path));
  return { path, label: '<stdin>' };
}

/** The subjects of the file, one at a time; throws SubjectsFileError at the first bad line. */
export async function* readSubjects(path: string, label: string, policy: Policy): AsyncGenerator<Subject> {
  const parser = new Parser(label, policy);
  let n = 0;
  try {
    for await (const raw of linesOf(path)) {
      n++;
      const subject = parser.line(raw, n);
      if (subject) yield subject;
    }
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new UsageError(`--subjects-from ${label}: no such file`);
    throw e;
  }
  if (n === 0 || !parser.started) throw new SubjectsFileError([`${label}:1: the file is empty: expected a CSV header naming ${parser.lookups()}, or JSON lines`]);
}

/** Reads the whole file once, collecting every problem: nothing runs unless it is clean. */
export async function validateSubjects(path: string, label: string, policy: Policy): Promise<number> {
  const parser = new Parser(label, policy, true);
  let n = 0;
  let subjects = 0;
  try {
    for await (const raw of linesOf(path)) {
      n++;
      if (parser.line(raw, n)) subjects++;
      if (parser.fatal) break;
    }
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new UsageError(`--subjects-from ${label}: no such file`);
    throw e;
  }
  if (!parser.started) parser.problems.push(`${label}:1: the file is empty: expected a CSV header naming ${parser.lookups()}, or JSON lines`);
  if (parser.problems.length) throw new SubjectsFileError(parser.problems);
  return subjects;
}

/** The file's lines split at LF only (a CR stays, to be reported), streamed chunk by chunk. */
async function* linesOf(path: string): AsyncGenerator<string> {
  let rest = '';
  for await (const chunk of createReadStream(path, { encoding: 'utf8', highWaterMark: 64 * 1024 })) {
    const text = rest + (chunk as string);
    const parts = text.split('\n');
    rest = parts.pop()!;
    yield* parts;
  }
  if (rest !== '') yield rest;
}

class Parser {
  readonly problems: string[] = [];
  started = false;
  fatal = false;
  private format: 'csv' | 'json' | undefined;
  private header: string[] = [];
  constructor(
    private readonly label: string,
    private readonly policy: Policy,
    private readonly collect = false,
  ) {}

  lookups(): string {
    return (this.policy.subject?.lookup ?? []).map((l) => l.by.join(',')).join(' or ');
  }

  private fail(line: number, message: string, fatal = false): undefined {
    const text = `${this.label}:${line}: ${message}`;
    if (!this.collect) throw new SubjectsFileError([text]);
    this.problems.push(text);
    if (fatal) this.fatal = true;
    return undefined;
  }

  line(raw: string, n: number): Subject | undefined {
    if (n === 1 && raw.startsWith('\uFEFF')) return this.fail(1, 'the file starts with a byte order mark (BOM): save it as UTF-8 without BOM', true);
    if (raw.endsWith('\r')) return this.fail(n, 'the line ends with CRLF (\\r\\n): use LF line endings', true);
    if (raw.trim() === '') return this.fail(n, 'blank line: one subject per line, no blank lines');
    if (!this.format) {
      this.started = true;
      this.format = raw.trimStart().startsWith('{') ? 'json' : 'csv';
      if (this.format === 'csv') {
        const cells = splitCsv(raw);
        if (typeof cells === 'string') return this.fail(n, `header: ${cells}`, true);
        this.header = cells.map((c) => c.trim());
        const problem = this.columns(this.header);
        if (problem) return this.fail(n, problem, true);
        return undefined;
      }
    }
    let record: [string, unknown][];
    if (this.format === 'json') {
      let parsed: unknown;
      try {
        parsed = JSON.parse(raw);
      } catch (e) {
        return this.fail(n, `not a JSON object: ${(e as Error).message}`);
      }
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return this.fail(n, 'not a JSON object: expected {"param": "value", ...}');
      record = Object.entries(parsed);
      const problem = this.columns(record.map(([k]) => k));
      if (problem) return this.fail(n, problem);
    } else {
      const cells = splitCsv(raw);
      if (typeof cells === 'string') return this.fail(n, cells);
      if (cells.length !== this.header.length) return this.fail(n, `${cells.length} ${cells.length === 1 ? 'value' : 'values'}, the header names ${this.header.length} columns (${this.header.join(',')})`);
      record = this.header.map((h, i) => [h, cells[i]]);
    }
    const values = new Map<string, string>();
    for (const [name, value] of record) {
      const param = this.policy.params.find((p) => p.name === name.replaceAll('-', '_'))!;
      if (typeof value !== 'string' && typeof value !== 'number') return this.fail(n, `${name}: expected a string value`);
      const text = String(value);
      const problem = checkValue(param.type, text);
      if (problem) return this.fail(n, `${name}: ${param.personal ? 'the value' : JSON.stringify(text)} is not a valid ${param.type}: ${problem}`);
      values.set(param.name, text);
    }
    return { line: n, values };
  }

  /** The columns (or keys) must be params and cover one lookup. */
  private columns(names: readonly string[]): string | undefined {
    const params = this.policy.params.map((p) => p.name);
    for (const name of names) {
      const snake = name.replaceAll('-', '_');
      if (!params.includes(snake)) {
        const near = didYouMean(snake, params);
        return `unknown column "${name}"${near ? ` (did you mean ${near}?)` : ''}: the columns are the policy's params (${params.join(', ')})`;
      }
    }
    const given = new Set(names.map((n) => n.replaceAll('-', '_')));
    if (new Set(names).size !== names.length) return 'a column is named twice';
    if (!(this.policy.subject?.lookup ?? []).some((l) => l.by.every((b) => given.has(b)))) {
      return `missing column: ${this.policy.name} finds a subject by ${this.lookups()} (have ${names.join(',') || 'none'})`;
    }
    return undefined;
  }
}

/** One CSV record on one line (RFC 4180 quoting, "" for a quote); a string says what is wrong. */
export function splitCsv(line: string): string[] | string {
  const cells: string[] = [];
  let i = 0;
  for (;;) {
    if (line[i] === '"') {
      let cell = '';
      i++;
      for (;;) {
        const q = line.indexOf('"', i);
        if (q < 0) return `unterminated quote (column ${cells.length + 1}): a quoted value must close on the same line`;
        cell += line.slice(i, q);
        if (line[q + 1] === '"') {
          cell += '"';
          i = q + 2;
          continue;
        }
        i = q + 1;
        break;
      }
      if (i < line.length && line[i] !== ',') return `unexpected text after a closing quote (column ${cells.length + 1})`;
      cells.push(cell);
    } else {
      const comma = line.indexOf(',', i);
      const cell = line.slice(i, comma < 0 ? line.length : comma);
      if (cell.includes('"')) return `a quote inside an unquoted value (column ${cells.length + 1}): quote the whole value and double the quote`;
      cells.push(cell);
      i = comma < 0 ? line.length : comma;
    }
    if (i >= line.length) return cells;
    i++; // the comma
    if (i === line.length) {
      cells.push('');
      return cells;
    }
  }
}

