import { readFileSync } from 'node:fs';

let version: string | undefined;

/** purgekit's own version, from its package.json (src/ and dist/ sit at the same depth). */
export function purgekitVersion(): string {
  version ??= (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  return version;
}
