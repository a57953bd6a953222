import { readFileSync } from 'node:fs';
import AjvModule from 'ajv';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { SCHEMA_FILE, VALIDATOR_FILE, validatorSource } from '../scripts/schema-validator.js';
import { validate } from '../src/validate/schemaValidator.js';

// src/validate/schemaValidator.ts is the schema compiled ahead of time (start-up does not load
// ajv's compiler). It must be what the script writes now, and report what ajv reports.
describe('the precompiled schema validator', () => {
  it('is up to date with schema/policy.schema.json (else: npx tsx scripts/schema-validator.ts)', () => {
    expect(readFileSync(VALIDATOR_FILE, 'utf8')).toBe(validatorSource());
  });

  it('reports the same errors as ajv compiling the schema at run time', () => {
    const Ajv = AjvModule.default ?? AjvModule;
    const runtime = new Ajv({ allErrors: true, verbose: true, strict: true, allowUnionTypes: true }).compile(JSON.parse(readFileSync(SCHEMA_FILE, 'utf8')) as object);
    const precompiled = validate as unknown as typeof runtime;
    const cases = ['unknown-key', 'wrong-type', 'valid-flags', 'purge-problems'].map((c) => parse(readFileSync(new URL(`golden/${c}/policy.yaml`, import.meta.url), 'utf8')) as unknown);
    cases.push({ version: 2, name: 'Bad Name', kind: 'nope', steps: [{ table: 1, extra: true }] }, [], 'text', null);
    let invalid = 0;
    for (const doc of cases) {
      const ok = precompiled(doc);
      expect(ok).toBe(runtime(doc));
      if (!ok) invalid++;
      expect(precompiled.errors ?? null).toEqual(runtime.errors ?? null);
    }
    expect(invalid).toBeGreaterThanOrEqual(5);
  });
});
