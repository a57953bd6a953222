import type { ErrorObject } from 'ajv';
import type { LoadedFile, PathSegment } from '../load/loadPolicy.js';
import { locate } from '../load/loadPolicy.js';
import type { Diagnostic } from '../core/errors.js';
import { didYouMean } from './didYouMean.js';
import { validate } from './schemaValidator.js';

/** The published schema (schema/policy.schema.json), the same file editors use. */
export const SCHEMA_PATH = new URL('../../schema/policy.schema.json', import.meta.url);

/**
 * The schema compiled ahead of time by ajv (scripts/schema-validator.ts writes schemaValidator.ts;
 * a test keeps it in step with the schema): start-up loads neither ajv's compiler nor the schema.
 */
const validateSchema = validate as ((data: unknown) => boolean) & { errors?: ErrorObject[] | null };

export function schemaDiagnostics(file: LoadedFile): Diagnostic[] {
  if (validateSchema(file.raw)) return [];
  const seen = new Set<string>();
  const out: Diagnostic[] = [];
  for (const error of validateSchema.errors ?? []) {
    const d = toDiagnostic(file, error);
    if (!d) continue;
    const key = `${d.line}:${d.col}:${d.message}`;
    if (!seen.has(key)) {
      seen.add(key);
      out.push(d);
    }
  }
  return out;
}

function toDiagnostic(file: LoadedFile, error: ErrorObject): Diagnostic | undefined {
  const path = pointerToPath(error.instancePath);
  const where = describe(path);
  const at = (p: readonly PathSegment[], key = false) => locate(file, p, { key });
  switch (error.keyword) {
    case 'additionalProperties': {
      const name = (error.params as { additionalProperty: string }).additionalProperty;
      const known = Object.keys((error.parentSchema as { properties?: object }).properties ?? {});
      const hint = didYouMean(name, known);
      // "description: a, b" or "a: b" inside { ... } splits a value into keys; say how to avoid it.
      const stray = /[\s(),]/.test(name) ? ' (a value containing ", " or ": " inside { } must be quoted)' : '';
      return { ...at([...path, name], true), message: `${where ? `${where}: ` : ''}unknown key "${name}"${hint ? ` (did you mean "${hint}"?)` : stray}` };
    }
    case 'required': {
      const name = (error.params as { missingProperty: string }).missingProperty;
      return { ...at(path), message: `${where ? `${where}: ` : ''}missing required key "${name}"` };
    }
    case 'propertyNames': {
      const name = (error.params as { propertyName: string }).propertyName;
      return { ...at([...path, name], true), message: `${where}: "${name}" must be snake_case (lowercase letters, digits, _; starting with a letter)` };
    }
    case 'pattern':
      if (error.propertyName !== undefined) return undefined; // reported by propertyNames
      if (path.length === 1 && path[0] === 'name') {
        return { ...at(path), message: 'name: must be lowercase letters, digits and dashes (it names the generated file)' };
      }
      return { ...at(path), message: `${where}: must match ${(error.params as { pattern: string }).pattern}` };
    case 'enum':
      return { ...at(path), message: `${where}: must be one of ${(error.params as { allowedValues: unknown[] }).allowedValues.map((v) => JSON.stringify(v)).join(', ')}` };
    case 'const':
      return { ...at(path), message: `${where}: must be ${JSON.stringify((error.params as { allowedValue: unknown }).allowedValue)}` };
    case 'type':
      return { ...at(path), message: `${where || 'policy'}: must be ${article((error.params as { type: string }).type)}` };
    default:
      return { ...at(path), message: `${where || 'policy'}: ${error.message ?? 'is invalid'}` };
  }
}

function article(type: string): string {
  const names: Record<string, string> = { object: 'a mapping', array: 'a list', string: 'a string', integer: 'an integer', number: 'a number', boolean: 'true or false' };
  return names[type] ?? type;
}

function pointerToPath(pointer: string): PathSegment[] {
  if (!pointer) return [];
  return pointer
    .slice(1)
    .split('/')
    .map((s) => s.replaceAll('~1', '/').replaceAll('~0', '~'))
    .map((s) => (/^\d+$/.test(s) ? Number(s) : s));
}

/** `steps[2].where`: how a path is named in messages. */
export function describe(path: readonly PathSegment[]): string {
  return path.map((s, i) => (typeof s === 'number' ? `[${s}]` : i === 0 ? s : `.${s}`)).join('');
}
