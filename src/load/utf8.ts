/** Strict UTF-8 decoding, apart from the YAML loader so that the run path can hash a policy file without loading yaml. */

export type Decoded = { ok: true; text: string } | { ok: false; valid: string; offset: number };

/** Strict UTF-8 (a BOM is kept, as before); on failure, the text before the first bad sequence. */
export function decodeUtf8(bytes: Uint8Array): Decoded {
  const strict = () => new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
  try {
    return { ok: true, text: strict().decode(bytes) };
  } catch {
    // The longest prefix that is valid (a sequence cut short at its end still counts as valid
    // when streaming), by bisection: validity of a prefix only ever goes from true to false.
    let lo = 0;
    let hi = bytes.length;
    while (lo < hi) {
      const mid = Math.ceil((lo + hi) / 2);
      try {
        strict().decode(bytes.subarray(0, mid), { stream: true });
        lo = mid;
      } catch {
        hi = mid - 1;
      }
    }
    // The prefix may end with the first bytes of the bad sequence: drop them from the text.
    const decoder = strict();
    const valid = decoder.decode(bytes.subarray(0, lo), { stream: true });
    const offset = Buffer.byteLength(valid, 'utf8');
    return { ok: false, valid, offset };
  }
}
