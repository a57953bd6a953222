import postgres from 'postgres';
import { ExitCode, PurgekitError } from '../errors.js';

/** The server could not be reached or refused us: exit 5. */
export class ConnectionError extends PurgekitError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, ExitCode.cannotConnect, options);
  }
}

/** Where a run goes, safe to print: never a password. */
export interface Target {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly database: string;
}

export interface Connection {
  readonly sql: postgres.Sql;
  readonly target: Target;
  /** Text that must never be printed (the password), for redact(). */
  readonly secrets: readonly string[];
}

/**
 * --connection, else DATABASE_URL, else the libpq PG* variables (the driver reads PGHOST,
 * PGPORT, PGUSER, PGPASSWORD, PGDATABASE itself). One connection: a run is one transaction.
 */
export function connect(connection: string | undefined, onNotice: (message: string) => void = () => {}): Connection {
  const url = connection ?? process.env['DATABASE_URL'];
  // Anything else the driver would read as a bare database name on localhost, and a password in
  // it could end up in a message: refuse it without echoing it.
  if (url !== undefined && !/^postgres(ql)?:\/\//.test(url)) {
    throw new ConnectionError(`${connection !== undefined ? '--connection' : 'DATABASE_URL'} must be a postgres:// or postgresql:// URL`);
  }
  const options = {
    max: 1,
    connect_timeout: 10,
    onnotice: (n: postgres.Notice) => onNotice(String(n['message'] ?? '')),
    // Never the application default: a run must be visible as purgekit in pg_stat_activity.
    connection: { application_name: 'purgekit' },
  };
  let sql: postgres.Sql;
  try {
    sql = url ? postgres(url, options) : postgres(options);
  } catch (e) {
    throw new ConnectionError(`invalid connection string: ${redact((e as Error).message, secretsOf(url))}`, { cause: e });
  }
  const o = sql.options as unknown as { host: string[]; port: number[]; user: string; database: string; pass?: unknown };
  const secrets = [...secretsOf(url), ...(typeof o.pass === 'string' && o.pass ? [o.pass] : [])];
  return { sql, secrets, target: { host: o.host.join(','), port: o.port[0] ?? 5432, user: o.user, database: o.database } };
}

function secretsOf(url: string | undefined): string[] {
  if (!url) return [];
  try {
    const password = new URL(url).password;
    return password ? [password, decodeURIComponent(password)] : [];
  } catch {
    return [];
  }
}

export function redact(text: string, secrets: readonly string[]): string {
  return secrets.filter((s) => s.length > 0).reduce((t, s) => t.split(s).join('***'), text);
}

const CONNECT_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'EHOSTUNREACH', 'ECONNRESET', 'CONNECT_TIMEOUT', 'CONNECTION_DESTROYED', 'CONNECTION_CLOSED']);
/** Authentication failed, no such database or role, too many connections. */
const CONNECT_SQLSTATES = new Set(['28P01', '28000', '3D000', '53300', '57P03']);

export function isConnectFailure(error: unknown): boolean {
  const code = (error as { code?: string } | null)?.code;
  return code !== undefined && (CONNECT_CODES.has(code) || CONNECT_SQLSTATES.has(code));
}

export function describeTarget(t: Target): string {
  return `${t.database} (${t.user}@${t.host}:${t.port})`;
}

/**
 * The first round trip of every command that talks to a database: it proves the connection
 * (a failure is ConnectionError, exit 5, with the password redacted) and names the database.
 */
export async function currentDatabase(conn: Connection): Promise<string> {
  try {
    const [row] = await conn.sql<{ database: string }[]>`SELECT current_database() AS database`;
    return row!.database;
  } catch (e) {
    if (isConnectFailure(e)) throw new ConnectionError(`cannot connect to ${describeTarget(conn.target)}: ${redact((e as Error).message, conn.secrets)}`, { cause: e });
    throw e;
  }
}
