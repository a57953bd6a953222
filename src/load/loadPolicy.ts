import { readFile } from 'node:fs/promises';
import { LineCounter, parseDocument, isMap, isPair, isScalar, type Document, type Node } from 'yaml';
import type { Diagnostic } from '../errors.js';

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
  return parsePolicyText(path, await readFile(path, 'utf8'));
}

export function parsePolicyText(path: string, text: string): LoadedFile {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  const syntaxErrors = doc.errors.map((e) => {
    const { line, col } = lines.linePos(e.pos[0]);
    return { file: path, line, col, message: firstLine(e.message) };
  });
  const raw = syntaxErrors.length ? undefined : doc.toJS({ maxAliasCount: 100 });
  return { path, text, doc, lines, raw, syntaxErrors };
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
