/**
 * Metric lines in job output: a line that starts with `LIFTOFF_METRICS ` followed by one JSON object, e.g.
 *
 *     LIFTOFF_METRICS {"step": 3, "loss": 0.41, "accuracy": 0.88}
 *
 * Any language can print one, and every runner streams output, so the server reads them where every uploaded byte
 * passes (the log append), before the log cap decides what is stored. Output arrives in chunks that split lines
 * anywhere, so the scan carries the unfinished line of one chunk into the next.
 *
 * The carry is bounded: an unfinished line that cannot be a metric line (it does not start with the marker) is kept
 * as NOT_METRIC_LINE, one character no metric line starts with, and a metric line longer than MAX_METRIC_LINE_BYTES is
 * given up (counted as refused) the same way. `null` means the next byte starts a line.
 */
export const METRIC_MARKER = 'LIFTOFF_METRICS ';
export const MAX_METRIC_LINE_BYTES = 64 * 1024;
const NOT_METRIC_LINE = '-';

/** One parsed metric line: its numeric values by key, and the optional integer step. */
export interface MetricLine {
  step: number | null;
  values: Array<[key: string, value: number]>;
}

export interface MetricScan {
  lines: MetricLine[];
  /** Lines that had the marker but were not a JSON object with at least one finite number (or were too long). */
  refused: number;
  carry: string | null;
}

/** Longest key kept, in characters; longer keys are refused with their line's other values kept. */
export const MAX_METRIC_KEY_LENGTH = 128;
/** Keys that are not metrics: `step` is the x axis. */
const STEP_KEY = 'step';

/** Scans `text` (the next output of a run) for metric lines, given the carry left by the previous chunk. */
export function scanMetricLines(carry: string | null, text: string): MetricScan {
  const scan: MetricScan = { lines: [], refused: 0, carry: null };
  let pending = carry ?? '';
  let start = 0;
  for (;;) {
    const nl = text.indexOf('\n', start);
    const piece = nl === -1 ? text.slice(start) : text.slice(start, nl);
    if (pending === NOT_METRIC_LINE) {
      // The rest of a line known not to be a metric line: skip to its end.
      if (nl === -1) {
        scan.carry = NOT_METRIC_LINE;
        return scan;
      }
      pending = '';
      start = nl + 1;
      continue;
    }
    const line = pending + piece;
    pending = '';
    if (nl === -1) {
      scan.carry = carryOf(line, scan);
      return scan;
    }
    start = nl + 1;
    if (line.startsWith(METRIC_MARKER)) {
      const parsed = parseMetricLine(line.slice(METRIC_MARKER.length));
      if (parsed) scan.lines.push(parsed);
      else scan.refused++;
    }
  }
}

/** What to carry of an unfinished line: all of it while it may become a metric line, else one marker character. */
function carryOf(line: string, scan: MetricScan): string | null {
  if (line === '') return null;
  const head = line.slice(0, METRIC_MARKER.length);
  if (!METRIC_MARKER.startsWith(head)) return NOT_METRIC_LINE;
  if (Buffer.byteLength(line) > MAX_METRIC_LINE_BYTES) {
    scan.refused++;
    return NOT_METRIC_LINE;
  }
  return line;
}

/**
 * The JSON object of a metric line: finite numbers become values, `step` (a non-negative safe integer) the x value;
 * strings, booleans, nested objects, nulls and over-long keys are left out. Undefined when nothing is usable.
 */
export function parseMetricLine(json: string): MetricLine | undefined {
  if (Buffer.byteLength(json) > MAX_METRIC_LINE_BYTES) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(json.endsWith('\r') ? json.slice(0, -1) : json);
  } catch {
    return undefined;
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) return undefined;
  let step: number | null = null;
  const values: Array<[string, number]> = [];
  for (const [key, value] of Object.entries(parsed as Record<string, unknown>)) {
    if (typeof value !== 'number' || !Number.isFinite(value)) continue;
    if (key === STEP_KEY) {
      if (Number.isSafeInteger(value) && value >= 0) step = value;
      continue;
    }
    // A NUL cannot be stored by PostgreSQL's text type; an empty key names nothing.
    if (key === '' || key.length > MAX_METRIC_KEY_LENGTH || key.includes('\u0000')) continue;
    values.push([key, value]);
  }
  return values.length ? { step, values } : undefined;
}
