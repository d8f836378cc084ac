import type { LogWindows } from './logWindows.js';

/** A match: its first byte and the 1-based line it is on. */
export interface LogMatch {
  offset: number;
  line: number;
}

export interface LogSearchPage {
  matches: LogMatch[];
  /** Where the next page starts (pass it as `cursor`); null once the whole stored log was searched. */
  next: number | null;
  /** The bytes [from, to) this request searched. */
  from: number;
  to: number;
}

export interface LogSearchOptions {
  query: string;
  caseSensitive: boolean;
  /** First byte to search from. */
  cursor: number;
  /** Most matches in the page. */
  limit: number;
  /** Most bytes searched in one request, so one request's work is bounded whatever the log's size. */
  budget: number;
}

/**
 * Literal search over a run's stored log bytes, a bounded stretch per request. It compares bytes, not decoded text:
 * offsets are exact even where the stored bytes are not valid UTF-8, and nothing in the query is a pattern (a regex
 * metacharacter is just a byte to find). Case-insensitive search folds ASCII letters only: folding other letters
 * changes their byte length in places, which would break the byte offsets. Matches do not overlap.
 *
 * Hand-written rather than a library: the match itself is Node's Buffer.indexOf; what is here is the paging (a match
 * may straddle two stretches: each stretch reads query-length − 1 bytes past its end and keeps matches that start
 * inside it) and the line numbers.
 */
export async function searchLog(windows: LogWindows, runId: string, o: LogSearchOptions): Promise<LogSearchPage> {
  const needle = Buffer.from(o.query, 'utf8');
  if (!o.caseSensitive) foldAscii(needle);
  const size = await windows.size(runId);
  const from = Math.min(o.cursor, size);
  const to = Math.min(size, from + o.budget);
  const { bytes } = await windows.bytes(runId, from, Math.min(size, to + needle.length - 1));
  if (!o.caseSensitive) foldAscii(bytes);
  const matches: LogMatch[] = [];
  let line = (await windows.newlinesBefore(runId, from)) + 1;
  let counted = 0; // bytes of `bytes` whose line breaks are in `line`
  let at = bytes.indexOf(needle);
  while (at >= 0 && from + at < to) {
    if (matches.length === o.limit) return { matches, next: from + at, from, to: from + at };
    for (let nl = bytes.indexOf(10, counted); nl >= 0 && nl < at; nl = bytes.indexOf(10, nl + 1)) line++;
    counted = at;
    matches.push({ offset: from + at, line });
    at = bytes.indexOf(needle, at + needle.length);
  }
  return { matches, next: to < size ? to : null, from, to };
}

/** Lower-cases the ASCII letters of `buf` in place (other bytes, UTF-8 included, unchanged). */
function foldAscii(buf: Buffer): void {
  for (let i = 0; i < buf.length; i++) {
    const b = buf[i] as number;
    if (b >= 65 && b <= 90) buf[i] = b + 32;
  }
}
