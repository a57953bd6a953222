import postgres from 'postgres';
import { ConnectionError, UsageError } from '../core/errors.js';

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
 * PGPORT, PGUSER, PGPASSWORD, PGDATABASE itself; PGSSLMODE, PGOPTIONS and PGAPPNAME are read
 * here). One connection: a run is one transaction.
 */
export function connect(connection: string | undefined, onNotice: (message: string) => void = () => {}): Connection {
  const url = connection ?? process.env['DATABASE_URL'];
  const source = connection !== undefined ? '--connection' : 'DATABASE_URL';
  // Anything else the driver would read as a bare database name on localhost, and a password in
  // it could end up in a message: refuse it without echoing it.
  if (url !== undefined && !/^postgres(ql)?:\/\//.test(url)) {
    throw new ConnectionError(`${source} must be a postgres:// or postgresql:// URL`);
  }
  const { base, settings } = url ? urlParameters(url, source) : { base: undefined, settings: envParameters() };
  const options = {
    max: 1,
    connect_timeout: 10,
    onnotice: (n: postgres.Notice) => onNotice(String(n['message'] ?? '')),
    ...settings.options,
    // The application name is purgekit unless the URL or PGAPPNAME says otherwise: a run must be
    // visible in pg_stat_activity.
    connection: { application_name: 'purgekit', ...settings.connection },
  };
  let sql: postgres.Sql;
  try {
    sql = base ? postgres(base, options) : postgres(options);
  } catch (e) {
    throw new ConnectionError(`invalid connection string: ${redact((e as Error).message, secretsOf(url))}`, { cause: e });
  }
  const o = sql.options as unknown as { host: string[]; port: number[]; user: string; database: string; pass?: unknown };
  const secrets = [...secretsOf(url), ...(typeof o.pass === 'string' && o.pass ? [o.pass] : [])];
  return { sql, secrets, target: { host: o.host.join(','), port: o.port[0] ?? 5432, user: o.user, database: o.database } };
}

/** What the libpq URL parameters a provider's connection string carries become for the driver. */
interface Settings {
  readonly options: Record<string, unknown>;
  readonly connection: Record<string, string>;
}

/** libpq URL parameters purgekit understands; any other is refused by name rather than ignored. */
export const URL_PARAMETERS = ['password', 'user', 'dbname', 'host', 'port', 'sslmode', 'options', 'application_name', 'connect_timeout', 'target_session_attrs', 'channel_binding'] as const;

const SSLMODES: Record<string, unknown> = {
  disable: false,
  // The driver has no "try plain first": both become "TLS if the server offers it".
  allow: 'prefer',
  prefer: 'prefer',
  require: 'require',
  // Check the certificate chain, not the host name (what libpq's verify-ca does).
  'verify-ca': { rejectUnauthorized: true, checkServerIdentity: () => undefined },
  'verify-full': 'verify-full',
};

/**
 * Splits a URL into what the driver parses itself (scheme, user, password, hosts, database)
 * and its query parameters, which purgekit maps: the driver would send an unknown one, such as
 * password, to the server as a setting, and authentication would fail for no visible reason.
 */
function urlParameters(url: string, source: string): { base: string; settings: Settings } {
  const at = url.indexOf('?');
  if (at < 0) return { base: url, settings: envParameters() };
  const base = url.slice(0, at);
  const params = queryOf(url.slice(at + 1), source);
  const options: Record<string, unknown> = {};
  const connection: Record<string, string> = {};
  for (const [name, value] of params) {
    switch (name) {
      case 'password':
        options['password'] = value;
        break;
      case 'user':
        options['user'] = value;
        break;
      case 'dbname':
        options['database'] = value;
        break;
      case 'host':
        options['host'] = value;
        break;
      case 'port':
        if (!/^\d+$/.test(value)) throw new UsageError(`${source}: port=${value} is not a port number`);
        options['port'] = Number(value);
        break;
      case 'sslmode':
        if (!(value in SSLMODES)) throw new UsageError(`${source}: sslmode=${value} is not one of ${Object.keys(SSLMODES).join(', ')}`);
        options['ssl'] = SSLMODES[value];
        break;
      case 'options':
      case 'application_name':
        connection[name] = value;
        break;
      case 'connect_timeout':
        if (!/^\d+$/.test(value)) throw new UsageError(`${source}: connect_timeout=${value} is not a number of seconds`);
        // libpq: 0 means wait indefinitely; a run must not, so it keeps purgekit's 10 s.
        if (Number(value) > 0) options['connect_timeout'] = Number(value);
        break;
      case 'target_session_attrs':
        if (!['any', 'read-write', 'read-only', 'primary', 'standby', 'prefer-standby'].includes(value)) {
          throw new UsageError(`${source}: target_session_attrs=${value} is not supported`);
        }
        if (value !== 'any') options['target_session_attrs'] = value;
        break;
      case 'channel_binding':
        // The driver authenticates with SCRAM but without channel binding: honouring "prefer" or
        // "disable" is connecting without it; "require" cannot be honoured, so it is refused.
        if (value === 'require') {
          throw new UsageError(`${source}: channel_binding=require is not supported (the driver does not do SCRAM channel binding); remove it to connect with plain SCRAM authentication, over TLS with sslmode=verify-full`);
        }
        if (value !== 'prefer' && value !== 'disable') throw new UsageError(`${source}: channel_binding=${value} is not one of disable, prefer`);
        break;
      default:
        // Only a name that looks like one is echoed: "?password:x" would print a password.
        throw new UsageError(`${source}: ${/^[a-z_]{1,40}$/.test(name) ? `the URL parameter ${name}` : 'a URL parameter'} is not supported; purgekit understands ${URL_PARAMETERS.join(', ')}`);
    }
  }
  const env = envParameters();
  return { base, settings: { options: { ...env.options, ...options }, connection: { ...env.connection, ...connection } } };
}

/**
 * name=value pairs of a URL's query, percent-decoded as libpq does: a + stays a + (URLSearchParams
 * would make it a space, and a password with a + in it would no longer match).
 */
function queryOf(query: string, source: string): [string, string][] {
  return query
    .split('&')
    .filter((pair) => pair !== '')
    .map((pair) => {
      const eq = pair.indexOf('=');
      const [name, value] = eq < 0 ? [pair, ''] : [pair.slice(0, eq), pair.slice(eq + 1)];
      try {
        return [decodeURIComponent(name), decodeURIComponent(value)];
      } catch {
        // Not the value: it may be the password.
        throw new UsageError(`${source}: ${(URL_PARAMETERS as readonly string[]).includes(name) ? `the URL parameter ${name}` : 'a URL parameter'} has a malformed %-escape`);
      }
    });
}

/** The libpq variables the driver does not read itself. */
function envParameters(): Settings {
  const env = process.env;
  const options: Record<string, unknown> = {};
  const connection: Record<string, string> = {};
  const sslmode = env['PGSSLMODE'];
  if (sslmode) {
    if (!(sslmode in SSLMODES)) throw new UsageError(`PGSSLMODE=${sslmode} is not one of ${Object.keys(SSLMODES).join(', ')}`);
    options['ssl'] = SSLMODES[sslmode];
  }
  if (env['PGOPTIONS']) connection['options'] = env['PGOPTIONS'];
  if (env['PGAPPNAME']) connection['application_name'] = env['PGAPPNAME'];
  return { options, connection };
}

/** A password in the URL, as userinfo or as ?password=, in every spelling a message could show. */
function secretsOf(url: string | undefined): string[] {
  if (!url) return [];
  const out: string[] = [];
  try {
    const password = new URL(url).password;
    if (password) out.push(password, decodeURIComponent(password));
  } catch {
    /* not parseable: the driver's own message is redacted with what else is known */
  }
  const at = url.indexOf('?');
  if (at >= 0) {
    for (const raw of url.slice(at + 1).split('&')) {
      const eq = raw.indexOf('=');
      if (eq < 0 || raw.slice(0, eq) !== 'password') continue;
      const encoded = raw.slice(eq + 1);
      out.push(encoded);
      try {
        out.push(decodeURIComponent(encoded));
      } catch {
        /* malformed: refused by urlParameters, and the encoded form is redacted */
      }
    }
  }
  return out.filter((s) => s.length > 0);
}

export function redact(text: string, secrets: readonly string[]): string {
  return secrets.filter((s) => s.length > 0).reduce((t, s) => t.split(s).join('***'), text);
}

const CONNECT_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'EHOSTUNREACH', 'ECONNRESET', 'CONNECT_TIMEOUT', 'CONNECTION_DESTROYED', 'CONNECTION_CLOSED']);
/** Authentication failed, no such database or role, too many connections. */
const CONNECT_SQLSTATES = new Set(['28P01', '28000', '3D000', '53300', '57P03']);

function isConnectFailure(error: unknown): boolean {
  const code = (error as { code?: string } | null)?.code;
  return code !== undefined && (CONNECT_CODES.has(code) || CONNECT_SQLSTATES.has(code));
}

export function describeTarget(t: Target): string {
  return `${t.database} (${t.user}@${t.host}:${t.port})`;
}

/**
 * The first round trips of every command that talks to a database go through here: the driver
 * connects lazily, so a server that cannot be reached or refuses us shows up as the first query's
 * error, which becomes ConnectionError (exit 5) naming the target, with the password redacted.
 * Any other error is the work's own and passes through unchanged.
 */
export async function connected<T>(conn: Connection, work: (sql: postgres.Sql) => Promise<T>): Promise<T> {
  try {
    return await work(conn.sql);
  } catch (e) {
    if (isConnectFailure(e)) throw new ConnectionError(`cannot connect to ${describeTarget(conn.target)}: ${redact((e as Error).message, conn.secrets)}`, { cause: e });
    throw e;
  }
}

/** The first round trip of a command that runs statements of its own: proves the connection and names the database. */
export async function currentDatabase(conn: Connection): Promise<string> {
  return connected(conn, async (sql) => {
    const [row] = await sql<{ database: string }[]>`SELECT current_database() AS database`;
    return row!.database;
  });
}
