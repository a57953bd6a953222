import { readFileSync } from 'node:fs';
import { LineCounter, parseDocument, isMap, isPair, isScalar, visit, type Alias, type Document, type Node } from 'yaml';
import type { Diagnostic } from '../core/errors.js';
import { decodeUtf8 } from './utf8.js';

/** A policy file as read from disk: text, YAML document with positions, and the untrusted value. */
export interface LoadedFile {
  readonly path: string;
  readonly text: string;
  readonly doc: Document.Parsed;
  readonly lines: LineCounter;
  /** Untrusted: only validation turns it into a Policy. */
  readonly raw: unknown;
  /** YAML syntax errors; when present, raw is not worth validating. */
  readonly syntaxErrors: readonly Diagnostic[];
}

export type PathSegment = string | number;

export async function loadPolicyFile(path: string): Promise<LoadedFile> {
  // Synchronously: a few KB each, and the promise API's file handles cost more than the read
  // for a directory of hundreds of policies (compile of 200, README: Performance).
  const bytes = readFileSync(path);
  const decoded = decodeUtf8(bytes);
  if (decoded.ok) return parsePolicyText(path, decoded.text);
  // Decoding with replacement would turn the bad bytes into U+FFFD, and a where clause into one
  // that compares with something else: refuse the file, at the first bad byte.
  const { line, col } = positionIn(decoded.valid);
  const message = `not valid UTF-8 (byte 0x${bytes[decoded.offset]!.toString(16).toUpperCase().padStart(2, '0')}): save the file as UTF-8`;
  return { ...parsePolicyText(path, ''), text: decoded.valid, raw: undefined, syntaxErrors: [{ file: path, line, col, message }] };
}

export { decodeUtf8 } from './utf8.js';

function positionIn(textBefore: string): { line: number; col: number } {
  const lines = textBefore.split('\n');
  return { line: lines.length, col: lines[lines.length - 1]!.length + 1 };
}

export function parsePolicyText(path: string, text: string): LoadedFile {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  const syntaxErrors: Diagnostic[] = [];
  const hinted = new Set<number>();
  for (const e of doc.errors) {
    const { line, col } = lines.linePos(e.pos[0]);
    if (hinted.has(line)) continue; // what follows a quoted scalar's end only repeats the first error
    const hint = e.code === 'UNEXPECTED_TOKEN' ? quotedScalarHint(text, e.pos[0], col) : undefined;
    if (hint) hinted.add(line);
    syntaxErrors.push({ file: path, line, col, message: `${firstLine(e.message)}${hint ?? ''}` });
  }
  let raw: unknown;
  if (!syntaxErrors.length) {
    const alias = aliasProblem(doc, text);
    if (alias) {
      const { line, col } = lines.linePos(alias.offset);
      syntaxErrors.push({ file: path, line, col, message: alias.message });
    } else {
      raw = doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
    }
  }
  return { path, text, doc, lines, raw, syntaxErrors };
}

/** yaml's own limit on what aliases may expand to ("billion laughs"): far more than a policy needs. */
const MAX_ALIAS_COUNT = 100;

/**
 * An alias with no anchor before it, or aliases that expand past MAX_ALIAS_COUNT nodes: located
 * at the alias, instead of the exception toJS() would throw.
 */
function aliasProblem(doc: Document.Parsed, text: string): { offset: number; message: string } | undefined {
  // An alias is written *name: text without a * has none, and the walk over the tree is skipped.
  if (!text.includes('*')) return undefined;
  const aliases: Alias[] = [];
  visit(doc, { Alias: (_, node) => void aliases.push(node) });
  for (const alias of aliases) {
    if (!alias.resolve(doc)) return { offset: alias.range?.[0] ?? 0, message: `unknown alias *${alias.source}: no anchor &${alias.source} is defined before it` };
  }
  if (!aliases.length) return undefined;
  try {
    doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
    return undefined;
  } catch (e) {
    if (!(e instanceof ReferenceError)) throw e;
    return { offset: aliases[0]!.range?.[0] ?? 0, message: `YAML aliases expand to too many nodes (more than ${MAX_ALIAS_COUNT} for one alias): write the values out` };
  }
}

/**
 * `where: 'ADMIN' = ANY(roles)`: YAML reads a quoted scalar up to its closing quote, then
 * trips over the rest. Say what to write instead, with the author's own line.
 */
function quotedScalarHint(text: string, offset: number, col: number): string | undefined {
  const lineStart = offset - (col - 1);
  const lineEnd = text.indexOf('\n', offset);
  const line = text.slice(lineStart, lineEnd < 0 ? text.length : lineEnd).replace(/\r$/, '');
  const m = /^(\s*(?:-\s+)?(?:[^\s'"#][^:#]*:\s+)?)(('(?:[^']|'')*'|"(?:[^"\\]|\\.)*")\s*\S.*)$/.exec(line);
  if (!m || m[1]!.length + m[3]!.length > col - 1) return undefined;
  const value = m[2]!.trimEnd();
  const key = m[1]!.trim();
  const quoted = value.includes('"') || value.includes('\\') ? `'${value.replaceAll("'", "''")}'` : `"${value}"`;
  return `: a value that starts with a quote ends at its closing quote; quote the whole expression (${key ? `${key} ` : ''}${quoted}) or use a block scalar (${key ? `${key} ` : ''}|- with the SQL on the next line, indented)`;
}

function firstLine(message: string): string {
  return message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '');
}

/**
 * Where in the file a value lives. With `key: true` it points at the key of the last segment
 * (for "unknown key" errors); when a path does not exist, at its nearest existing ancestor.
 */
export function locate(file: LoadedFile, path: readonly PathSegment[], options: { key?: boolean } = {}): Diagnostic {
  let node: unknown = file.doc.contents;
  let offset = (node as Node | null)?.range?.[0] ?? 0;
  for (const [i, segment] of path.entries()) {
    const last = i === path.length - 1;
    if (!isMap(node) && !(node && typeof node === 'object' && 'items' in node)) break;
    const collection = node as { items: unknown[] };
    let next: unknown;
    let keyOffset: number | undefined;
    if (isMap(node)) {
      const pair = node.items.find((p) => isPair(p) && isScalar(p.key) && p.key.value === segment);
      if (!pair) break;
      keyOffset = (pair.key as Node).range?.[0];
      next = pair.value;
    } else {
      next = typeof segment === 'number' ? collection.items[segment] : undefined;
    }
    if (next === undefined || next === null) {
      if (keyOffset !== undefined) offset = keyOffset;
      break;
    }
    offset = last && options.key && keyOffset !== undefined ? keyOffset : ((next as Node).range?.[0] ?? offset);
    node = next;
  }
  const { line, col } = file.lines.linePos(offset);
  return { file: file.path, line, col, message: '' };
}

/** The YAML node of a scalar at path, for mapping offsets inside SQL text back to the file. */
export function scalarAt(file: LoadedFile, path: readonly PathSegment[]): { node: Node; source: string } | undefined {
  const node = file.doc.getIn(path, true);
  if (!isScalar(node) || !node.range) return undefined;
  return { node, source: file.text.slice(node.range[0], node.range[1]) };
}
