/**
 * The questions purgekit asks at a terminal, through @inquirer's prompts (search, confirm,
 * input): maintained, with paging and keyboard handling, and no native code. They write to
 * stderr (people), never stdout (data: --json stays clean); their colours come from
 * node:util styleText, which honours NO_COLOR and a stream that is not a TTY. Loaded only when
 * apply asks something: the run path does not pay for them.
 */
import { ExitCode, PurgekitError } from '../core/errors.js';

export interface Choice<T> {
  readonly value: T;
  readonly name: string;
}

const context = () => ({ input: process.stdin, output: process.stderr });

/** Ctrl+C or Ctrl+D at a question: nothing was changed, exit 130. */
async function asked<T>(question: Promise<T>): Promise<T> {
  try {
    return await question;
  } catch (error) {
    if (error instanceof Error && (error.name === 'ExitPromptError' || error.name === 'AbortPromptError')) {
      throw new PurgekitError('cancelled', 'cancelled at the terminal: nothing was changed', ExitCode.interrupted);
    }
    throw error;
  }
}

/** A search term, and a list of what it finds to choose one from (paged; the source limits it). */
export async function searchChoice<T>(
  message: string,
  source: (term: string) => Promise<{ readonly choices: readonly Choice<T>[]; readonly more: string | undefined }>,
  pageSize: number,
): Promise<T> {
  const { default: search, Separator } = await import('@inquirer/search');
  return asked(
    search<T>(
      {
        message,
        pageSize,
        source: async (term) => {
          const { choices, more } = await source(term ?? '');
          return more ? [...choices, new Separator(more)] : [...choices];
        },
      },
      context(),
    ),
  );
}

export async function yesNo(message: string): Promise<boolean> {
  const { default: confirm } = await import('@inquirer/confirm');
  return asked(confirm({ message, default: false }, context()));
}

/** A line typed exactly as it is: no trimming, no case folding. */
export async function typed(message: string): Promise<string> {
  const { default: input } = await import('@inquirer/input');
  return asked(input({ message }, context()));
}
