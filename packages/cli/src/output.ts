import type { LogKind } from '@liftoff/core';

/**
 * Plain aligned tables. Hand-written on purpose: the CLI prints a handful of short tables and a 20-line formatter
 * keeps the binary free of a table dependency (cli-table3 and friends draw boxes we do not want in pipes).
 */
export function table(headers: string[], rows: Array<Array<string | number | null | undefined>>): string {
  const cells = rows.map((r) => r.map((c) => (c === null || c === undefined ? '-' : String(c))));
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) =>
    r
      .map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(headers), ...cells.map(line)].join('\n');
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

export function when(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return '-';
  return new Date(ms)
    .toISOString()
    .replace('T', ' ')
    .replace(/\.\d+Z$/, 'Z');
}

export function duration(start: number | null, end: number | null, now = Date.now()): string {
  if (start === null) return '-';
  const s = Math.round(((end ?? now) - start) / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/**
 * Terminal control sequences in job output, except colours: OSC (window titles, hyperlinks, clipboard writes), other
 * CSI sequences (cursor moves, screen clears), other ESC sequences and C0/C1 controls but tab, newline and carriage
 * return (progress bars redraw with it). A job's log must not drive the terminal of whoever reads it. Hand-written:
 * strip-ansi removes colours too, and the rule here is short.
 */
const TERMINAL_CONTROLS =
  // eslint-disable-next-line no-control-regex
  /\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b\[([0-9;:?<=>]*)([ -/]*[@-~])?|\x1b[^[\]]?|[\x00-\x08\x0b\x0c\x0e-\x1a\x1c-\x1f\x7f\x80-\x9f]/g;

export function stripTerminalControls(text: string): string {
  return text.replace(TERMINAL_CONTROLS, (m: string, params: string | undefined, final: string | undefined) =>
    final === 'm' && /^[0-9;:]*$/.test(params ?? '') ? m : '',
  );
}

/**
 * Writes a piece of a run's log, its terminal controls but colours stripped (unless `raw`). On a terminal the
 * agent's `[liftoff]` notes are dimmed, so a job printing a line that looks like one is told apart.
 */
export function writeLog(text: string, kind: LogKind, raw = false): void {
  const shown = raw ? text : stripTerminalControls(text);
  process.stdout.write(kind === 'note' && process.stdout.isTTY && !raw ? `\x1b[2m${shown}\x1b[22m` : shown);
}
