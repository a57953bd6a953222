/**
 * The residue scan's data: what is searched for, where, and what was found. Plain readonly
 * records; the scan (scan.ts) produces them, report.ts prints them, docs/residue-output.schema.json
 * is the shape of the --json document built from them.
 */

/** Where an identifying value came from. */
export type ValueSource =
  | 'key' // the subject key of a row the policy's lookup found (or given with --value)
  | 'identifier' // a subject.identifiers column of such a row (or given with --value)
  | 'param'; // a lookup parameter as given on the command line

/** One value to search for. Never printed: reports name it (`email`, `id`) and give its HMAC. */
export interface IdentifyingValue {
  /** The column or param it stands for; `email#2` for the second subject of a multi-subject lookup. */
  readonly name: string;
  /** The column (key, identifier) or param the value belongs to, without the #n. */
  readonly column: string;
  readonly source: ValueSource;
  readonly value: string;
  /** Looks like an email: also matched case-insensitively. */
  readonly email: boolean;
  /** Long enough and not a bare number: also searched as a substring of text and JSON strings. */
  readonly substring: boolean;
}

/** How a searched column is read. */
export type ColumnKind = 'text' | 'json' | 'jsonb' | 'array';

export interface SearchColumn {
  readonly name: string;
  readonly kind: ColumnKind;
  /** The type as the catalog names it (format_type), domains included: for people. */
  readonly type: string;
  /** text/varchar compare as they are (their indexes answer); char, citext and domains are read as text. */
  readonly plain: boolean;
  /** A pg_trgm index covers the column: substrings are searched with ILIKE, which it answers. */
  readonly trigram: boolean;
}

export interface SearchTable {
  /** schema.table quoted as SQL needs. */
  readonly table: string;
  readonly schema: string;
  readonly name: string;
  readonly partitioned: boolean;
  /** Primary key columns; empty: rows are named by ctid. */
  readonly primaryKey: readonly string[];
  readonly columns: readonly SearchColumn[];
  /** Searchable columns the role may not read, with why. */
  readonly skippedColumns: readonly { readonly column: string; readonly reason: string }[];
  /** pg_class: the table's size on disk (all partitions) and its estimated rows; -1 rows: never analyzed. */
  readonly bytes: number;
  readonly rows: number;
  /** pg_stats: average width of the searched columns times rows, when analyzed. */
  readonly columnBytes: number | null;
}

export type MatchKind = 'exact' | 'case-insensitive' | 'json' | 'array-element' | 'substring';

export interface Finding {
  readonly table: string;
  readonly schema: string | null;
  readonly name: string | null;
  readonly column: string;
  readonly kind: MatchKind;
  /** For JSON: the path of the matching value (`accountId`, `owner.contacts[*].email`). */
  readonly path: string | null;
  /** Which value (by name: `email`, `id`), never the value itself. */
  readonly value: string;
  readonly source: ValueSource;
  /** HMAC-SHA256 of the value under the audit log's key, when that key exists: correlates runs without revealing it. */
  readonly digest: string | null;
  readonly rows: number;
  /** Up to --keys primary keys of matching rows (a key equal to a searched value is replaced by [value name]). */
  readonly keys: readonly Readonly<Record<string, string | null>>[];
  /** A step that finds these rows from :subject, as purgekit discover writes steps: review it before adding it. */
  readonly suggestion: string;
}

export type TableOutcome =
  | { readonly status: 'scanned'; readonly matchedRows: number; readonly ms: number; readonly access: string }
  | { readonly status: 'planned'; readonly access: string } // --estimate: planned, not read
  | { readonly status: 'skipped'; readonly reason: string }
  | { readonly status: 'not-scanned'; readonly reason: string };
