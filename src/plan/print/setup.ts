import { quoteIdent } from '../../sql/quote.js';
import { paramsBlock, type ParamsShape, type RenderedValues } from '../params.js';
import { raiseCall, REPORT, SETTINGS } from '../sql.js';
import { GuardCode } from '../nodes.js';

/** The statements before and after the policy's own: session settings, the working tables, the report. */

export function searchPath(schema: string): string {
  return `SET LOCAL search_path = ${quoteIdent(schema)}, pg_temp`;
}

export const LOCK_TIMEOUT = "SET LOCAL lock_timeout = '10s'";

// Not DROP TABLE IF EXISTS: in a fresh session that prints a NOTICE about pg_temp.
export const REPORT_RESET = `DO $report$ BEGIN IF to_regclass('${REPORT}') IS NOT NULL THEN DROP TABLE ${REPORT}; END IF; END $report$`;

export const REPORT_TABLE = `CREATE TEMP TABLE purgekit_report (\n  seq integer GENERATED ALWAYS AS IDENTITY,\n  item text NOT NULL,\n  target text,\n  outcome text NOT NULL,\n  rows bigint,\n  detail text,\n  mark bigint -- bookkeeping of the checks, not shown\n)`;

/**
 * Every guard raises through this function, so that a guard is one plain statement. It lives in
 * pg_temp for the session (functions have no ON COMMIT DROP), hence OR REPLACE; it returns
 * bigint so that a CASE can call it where a count goes.
 */
export const RAISE_FUNCTION = `CREATE OR REPLACE FUNCTION pg_temp.purgekit_raise(code text, message text) RETURNS bigint\nLANGUAGE plpgsql AS $raise$ BEGIN RAISE EXCEPTION USING ERRCODE = code, MESSAGE = message; END $raise$`;

/** The settings that switch off foreign keys and triggers, resolve names, or say who runs: as at the start. */
export const SETTINGS_SNAPSHOT = `CREATE TEMP TABLE purgekit_settings ON COMMIT DROP AS
SELECT current_setting('session_replication_role') AS session_replication_role, current_setting('search_path') AS search_path, current_user AS role`;

export function params(shape: ParamsShape, values?: RenderedValues): string {
  return paramsBlock(shape, values);
}

export const READ_ONLY = 'SET LOCAL transaction_read_only = on';

/**
 * The last line: a function that calls set_config() (a user-defined one marked STABLE, say)
 * could have set session_replication_role = replica, which silently switches off foreign-key
 * checks, ON DELETE CASCADE and triggers, or moved search_path or the role. Any of that rolls
 * the run back, as does a run started with foreign keys off.
 */
export const SETTINGS_CHECK = [
  `SELECT ${raiseCall(GuardCode.settingsChanged, "'a setting that keeps this run honest changed or was off: ' || changed")}`,
  "FROM (SELECT concat_ws(', ',",
  "  CASE WHEN current_setting('session_replication_role') <> 'origin' OR session_replication_role <> 'origin' THEN format('session_replication_role %s at the start, %s now (foreign keys and triggers fire only under origin)', session_replication_role, current_setting('session_replication_role')) END,",
  "  CASE WHEN current_setting('search_path') <> search_path THEN format('search_path %s at the start, %s now', search_path, current_setting('search_path')) END,",
  "  CASE WHEN current_user <> role THEN format('role %s at the start, %s now', role, current_user) END",
  `) AS changed FROM ${SETTINGS}) AS settings`,
  "WHERE changed <> ''",
].join('\n');

export const REPORT_SELECT = `SELECT item, target, outcome, rows, detail FROM ${REPORT} ORDER BY seq`;
