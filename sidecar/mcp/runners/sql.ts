/** One `sql_query` call as a runner takes it (limits applied). */
export interface SqlRequest {
  readonly sql: string;
  readonly params?: ReadonlyArray<string | number | boolean | null> | undefined;
  readonly maxRows: number;
  readonly database?: string | undefined;
}

/** What `sql_query` answers (its output schema). */
export interface SqlResult {
  columns: string[];
  rows: unknown[][];
  row_count: number;
  affected_rows?: number;
  command?: string;
  truncated: boolean;
}
