import { relative, resolve, sep } from 'node:path';

/**
 * The policy file a generated file names in its header, relative to the generated file. Apart
 * from render.ts so that the command line can read it without loading the formatter.
 */
export function sourceOf(text: string): string | undefined {
  return text.match(/^-- Source: +(.+), sha256 [0-9a-f]{64}$/m)?.[1];
}

/** The policy's path as seen from the generated file's directory, with / separators. */
export function sourceLabel(compiled: { readonly source: { readonly path: string } }, outDir: string): string {
  return relative(resolve(outDir), resolve(compiled.source.path)).split(sep).join('/');
}
