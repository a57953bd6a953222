import { createHash } from 'node:crypto';

/** Text as it is hashed: LF line endings, trailing whitespace trimmed, one trailing newline. */
export function normalizeText(text: string): string {
  return `${text.replace(/\r\n?/g, '\n').trimEnd()}\n`;
}

export function sha256(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}
