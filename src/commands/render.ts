import { dirname } from 'node:path';
import { render } from '../render/render.js';
import { collectValues, renderValues } from '../values.js';
import { resolvePolicy } from './resolvePolicy.js';
import { DEFAULT_OUT, sourceLabel } from './compile.js';

/** The standalone script of a policy with its parameter block filled in, ready to paste. */
export async function renderCommand(
  target: string,
  options: { policiesDir: string; values: Readonly<Record<string, unknown>>; pairs: readonly string[]; escapedPairs?: readonly string[] },
): Promise<string> {
  const { policy, plan, generatedFile } = await resolvePolicy(target, options.policiesDir);
  const values = renderValues(policy, collectValues(policy, options.values, options.pairs, options.escapedPairs));
  const outDir = generatedFile ? dirname(generatedFile) : DEFAULT_OUT;
  return render(plan, { sourceLabel: sourceLabel(plan, outDir), values });
}
