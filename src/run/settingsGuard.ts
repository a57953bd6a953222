/**
 * The runner's own last line before COMMIT, independent of the script's PK010 check (which
 * reads its start values from a temporary table that a function in allow_functions could
 * write): the settings that switch off foreign keys, ON DELETE CASCADE and triggers
 * (session_replication_role), change what the policy's names mean (search_path) or who runs
 * (the role) must be as they were when the run began, and foreign keys must have been on.
 */
export interface SettingsSnapshot {
  readonly session_replication_role: string;
  readonly search_path: string;
  readonly role: string;
}

/** The query whose one row is a SettingsSnapshot (the runner pipelines it, run/pipeline.ts). */
export const GUARDED_SETTINGS_SQL = `SELECT current_setting('session_replication_role') AS session_replication_role,
       current_setting('search_path') AS search_path, current_user::text AS role`;

/** What changed (or was off from the start), or undefined when every setting is as it was. */
export function changedSettings(before: SettingsSnapshot, now: SettingsSnapshot): string | undefined {
  const changes = (Object.keys(before) as (keyof SettingsSnapshot)[])
    .filter((k) => now[k] !== before[k] || (k === 'session_replication_role' && now[k] !== 'origin'))
    .map((k) => `${k} ${before[k]} at the start, ${now[k]} now`);
  if (!changes.length) return undefined;
  return `a setting that keeps this run honest changed or was off: ${changes.join(', ')} (foreign keys and triggers fire only under session_replication_role origin)`;
}
