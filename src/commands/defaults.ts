/**
 * Default paths of the command line. Kept apart from the commands so that cli.ts can show them
 * in --help without loading any command.
 */
export const DEFAULT_POLICIES = 'policies';
export const DEFAULT_OUT = 'generated';
export const DEFAULT_AUDIT_LOG = '.purgekit/audit.jsonl';
