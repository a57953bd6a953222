import type { FlagDecl, ParamDecl, ParamType } from '../policy.js';

/**
 * The params and flags a policy declares, read from its raw (schema-checked) value. validate
 * adds its semantic checks on top; the command line reads them alone, to derive a policy's
 * options without loading the SQL parser.
 */
type Raw = Record<string, unknown>;
const isObject = (v: unknown): v is Raw => typeof v === 'object' && v !== null && !Array.isArray(v);
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

export function paramDecls(raw: Raw): ParamDecl[] {
  return Object.entries(isObject(raw['params']) ? raw['params'] : {}).map(([name, decl]) => {
    const d = isObject(decl) ? decl : {};
    const type = (str(d['type']) ?? 'text') as ParamType;
    return {
      name, type,
      ...(d['normalize'] ? { normalize: d['normalize'] as ParamDecl['normalize'] } : {}),
      ...(str(d['description']) ? { description: str(d['description']) } : {}),
      personal: typeof d['personal'] === 'boolean' ? d['personal'] : type === 'text',
    };
  });
}

export function flagDecls(raw: Raw): FlagDecl[] {
  return Object.entries(isObject(raw['flags']) ? raw['flags'] : {}).map(([name, decl]) => {
    const d = isObject(decl) ? decl : {};
    return { name, default: d['default'] === true, ...(str(d['description']) ? { description: str(d['description']) } : {}) };
  });
}
