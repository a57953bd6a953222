import { isScalar, Scalar } from 'yaml';
import type { Diagnostic } from '../core/errors.js';
import { locate, scalarAt, type LoadedFile, type PathSegment } from './loadPolicy.js';

/**
 * Map a character offset in a SQL scalar back to the file, through every scalar style: the value
 * is walked alongside its source, skipping what YAML folds away (indentation, line breaks,
 * quotes, escapes). One pass, and only up to the offset.
 */
export function sqlPosition(file: LoadedFile, path: readonly PathSegment[], text: string, offset: number): Diagnostic {
  const base = locate(file, path);
  const found = scalarAt(file, path);
  if (!found || !isScalar(found.node) || !found.node.range) return base;
  const type = (found.node as Scalar).type;
  const src = file.text;
  const end = found.node.range[1];
  let s = found.node.range[0];
  if (type === Scalar.BLOCK_LITERAL || type === Scalar.BLOCK_FOLDED) s = src.indexOf('\n', s) + 1;
  else if (type === Scalar.QUOTE_DOUBLE || type === Scalar.QUOTE_SINGLE) s += 1;
  const isSpace = (c: string | undefined) => c === ' ' || c === '\t' || c === '\n' || c === '\r';
  for (let v = 0; v < offset && s < end; ) {
    const c = src[s];
    if (type === Scalar.QUOTE_DOUBLE && c === '\\') {
      const e = src[s + 1];
      const width = e === 'x' ? 4 : e === 'u' ? 6 : e === 'U' ? 10 : 2;
      if (e === '\n' || e === '\r') s += 2;
      else {
        s += width;
        v += (e === 'U' ? 2 : 1);
      }
    } else if (type === Scalar.QUOTE_SINGLE && c === "'" && src[s + 1] === "'") {
      s += 2;
      v += 1;
    } else if (c === text[v]) {
      s += 1;
      v += 1;
    } else if (isSpace(c)) {
      s += 1;
    } else if (isSpace(text[v])) {
      v += 1;
    } else {
      return base; // not aligned: a style this walk does not know
    }
  }
  while (isSpace(src[s]) && !isSpace(text[offset]) && s < end) s += 1;
  const { line, col } = file.lines.linePos(s);
  return { ...base, line, col };
}
