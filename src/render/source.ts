/**
 * The policy file a generated file names in its header, relative to the generated file. Apart
 * from render.ts so that the command line can read it without loading the formatter.
 */
export function sourceOf(text: string): string | undefined {
  return text.match(/^-- Source: +(.+), sha256 [0-9a-f]{64}$/m)?.[1];
}
