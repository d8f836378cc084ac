import Anser from 'anser';

/** One line of the log as the viewer keeps it: its text as stored (escapes and `\r`s included), and whose it is. */
export interface LogLine {
  text: string;
  /** The agent's `[liftoff]` note rather than the job's output. */
  note: boolean;
}

/**
 * What a terminal would show of a line: the text after its last carriage return (a progress bar redrawn with `\r`
 * shows its latest state). A `\r` ending the line is a CRLF line end, not a redraw.
 */
export function collapseCarriageReturns(text: string): string {
  const t = text.endsWith('\r') ? text.slice(0, -1) : text;
  const at = t.lastIndexOf('\r');
  return at < 0 ? t : t.slice(at + 1);
}

// Escapes anser does not parse (it handles CSI sequences): OSC (window titles, hyperlinks) and two-byte ESC codes.
// They change nothing a log viewer can show, so they go, and so does any ESC left over, so none is shown raw.
// eslint-disable-next-line no-control-regex -- matching terminal control bytes is the point
const OSC = /\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?/g;
// eslint-disable-next-line no-control-regex -- matching terminal control bytes is the point
const ESC_PAIR = /\x1b[()#][0-9A-Za-z]|\x1b[=>78DEHMNOZc]/g;
// eslint-disable-next-line no-control-regex -- matching terminal control bytes is the point
const CONTROL = /[\x00-\x08\x0b-\x1f\x7f]/g;

/** A run of text with one style. */
export interface StyledSpan {
  text: string;
  /** CSS classes: `ansi-<colour>-fg` / `-bg` for the 16 basic colours, `ansi-bold`, `ansi-underline`, … */
  className: string;
  /** Inline colours for 256-colour and true-colour codes. */
  color?: string;
  background?: string;
}

/** The spans of one displayed line: `\r` collapsed, ANSI SGR codes turned into styles, other escapes removed. */
export function styleLine(text: string): StyledSpan[] {
  const shown = collapseCarriageReturns(text).replace(OSC, '').replace(ESC_PAIR, '');
  if (!shown.includes('\x1b')) return [{ text: shown.replace(CONTROL, ''), className: '' }];
  return Anser.ansiToJson(shown, { use_classes: true, remove_empty: true }).map((e) => {
    const classes: string[] = [];
    const span: StyledSpan = { text: e.content.replace(CONTROL, ''), className: '' };
    const fg = colour(e.fg, e.fg_truecolor);
    const bg = colour(e.bg, e.bg_truecolor);
    if (fg?.className) classes.push(`${fg.className}-fg`);
    if (bg?.className) classes.push(`${bg.className}-bg`);
    if (fg?.css) span.color = fg.css;
    if (bg?.css) span.background = bg.css;
    for (const d of e.decorations ?? []) classes.push(`ansi-${d}`);
    span.className = classes.join(' ');
    return span;
  });
}

/** anser's class for a colour: a basic one keeps its class (styled in styles.css), the others become CSS colours. */
function colour(cls: string | null, truecolor: string | null): { className?: string; css?: string } | undefined {
  if (!cls) return undefined;
  if (cls === 'ansi-truecolor') return truecolor ? { css: `rgb(${truecolor})` } : undefined;
  const palette = /^ansi-palette-(\d+)$/.exec(cls);
  if (palette) return { css: xterm256(Number(palette[1])) };
  return { className: cls };
}

/** The xterm 256-colour table: 16 basic (as their bright CSS equivalents), a 6×6×6 cube, 24 greys. */
function xterm256(n: number): string {
  const basic = ['#000', '#c00', '#0a0', '#c50', '#23e', '#b0b', '#0aa', '#ccc'];
  if (n < 8) return basic[n] ?? '#ccc';
  if (n < 16) return ['#666', '#f55', '#5f5', '#ff5', '#77f', '#f5f', '#5ff', '#fff'][n - 8] ?? '#fff';
  if (n < 232) {
    const i = n - 16;
    const v = (k: number) => (k === 0 ? 0 : 55 + k * 40);
    return `rgb(${v(Math.floor(i / 36))}, ${v(Math.floor(i / 6) % 6)}, ${v(i % 6)})`;
  }
  const g = 8 + (n - 232) * 10;
  return `rgb(${g}, ${g}, ${g})`;
}

/**
 * Splits a page of the log (from `GET /logs?line=`) into lines, each marked a note when it starts inside one of the
 * page's note byte ranges. A page ends after a line break, so its last empty piece is not a line; a page that ends
 * the log without one keeps its last line.
 */
export function splitPage(
  data: string,
  offset: number,
  notes: ReadonlyArray<{ offset: number; size: number }>,
): LogLine[] {
  const texts = data.split('\n');
  if (texts.at(-1) === '') texts.pop();
  const encoder = new TextEncoder();
  let at = offset;
  return texts.map((text) => {
    const note = notes.some((n) => at >= n.offset && at < n.offset + n.size);
    at += encoder.encode(text).length + 1;
    return { text, note };
  });
}

/** Most lines the live tail keeps in memory; older ones are dropped and paged back from the server when needed. */
const TAIL_MAX_LINES = 60_000;

/**
 * The live end of a run's log, as the log stream delivers it: the lines from `startLine` on, the last one possibly
 * unfinished. Kept outside React state and read by the viewer once per animation frame, so a fast log costs one
 * render a frame, not one per event.
 */
export class LogTail {
  /** Line number of `lines[0]`. */
  startLine = 1;
  /** The lines from `startLine`; the last is the unfinished one ('' right after a line break). */
  lines: LogLine[] = [{ text: '', note: false }];
  /** Set once the stream is attached at the log's end; before that the viewer knows the log from pages only. */
  ready = false;
  private readonly listeners = new Set<() => void>();
  private frame: number | null = null;

  /** Lines in the log so far (an unfinished last line counts, an empty one after a break does not). */
  get totalLines(): number {
    const last = this.lines.at(-1);
    return this.startLine - 1 + this.lines.length - (last && last.text === '' ? 1 : 0);
  }

  /** Starts the tail at line `line` (the log's last line, whose text so far is `text`). */
  reset(line: number, text: string, note: boolean): void {
    this.startLine = line;
    this.lines = [{ text, note }];
    this.ready = true;
    this.changed();
  }

  append(text: string, note: boolean): void {
    const parts = text.split('\n');
    const last = this.lines[this.lines.length - 1] as LogLine;
    last.text += parts[0] ?? '';
    if (note && (parts[0] ?? '') !== '') last.note = true;
    for (let i = 1; i < parts.length; i++) this.lines.push({ text: parts[i] ?? '', note: note && parts[i] !== '' });
    if (this.lines.length > TAIL_MAX_LINES) {
      const drop = this.lines.length - TAIL_MAX_LINES + 10_000;
      this.lines = this.lines.slice(drop);
      this.startLine += drop;
    }
    this.changed();
  }

  /** The line `line` when the tail holds it. */
  line(line: number): LogLine | undefined {
    return line >= this.startLine ? this.lines[line - this.startLine] : undefined;
  }

  /** Calls `fn` at most once per animation frame after changes. */
  subscribe(fn: () => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  private changed(): void {
    if (this.frame !== null) return;
    const flush = () => {
      this.frame = null;
      for (const fn of this.listeners) fn();
    };
    this.frame = typeof requestAnimationFrame === 'function' ? requestAnimationFrame(flush) : Number(setTimeout(flush));
  }
}

/**
 * The spans with the occurrences of `query` in their shown text set apart (`mark`), an occurrence across two
 * spans included. Case folding as the server's search does it: ASCII letters only.
 */
export function markMatches(
  spans: StyledSpan[],
  query: string,
  caseSensitive: boolean,
): Array<StyledSpan & { mark: boolean }> {
  const fold = (s: string) => (caseSensitive ? s : s.replace(/[A-Z]/g, (c) => c.toLowerCase()));
  const text = fold(spans.map((s) => s.text).join(''));
  const needle = fold(query);
  const ranges: Array<[number, number]> = [];
  if (needle)
    for (let at = text.indexOf(needle); at >= 0; at = text.indexOf(needle, at + needle.length))
      ranges.push([at, at + needle.length]);
  if (!ranges.length) return spans.map((s) => ({ ...s, mark: false }));
  const out: Array<StyledSpan & { mark: boolean }> = [];
  let pos = 0;
  for (const s of spans) {
    const end = pos + s.text.length;
    // Cut points of this span: its ends and every range boundary inside it.
    const cuts = new Set([pos, end]);
    for (const [a, b] of ranges) {
      if (a > pos && a < end) cuts.add(a);
      if (b > pos && b < end) cuts.add(b);
    }
    const points = [...cuts].sort((x, y) => x - y);
    for (let i = 0; i + 1 < points.length; i++) {
      const a = points[i] as number;
      const b = points[i + 1] as number;
      const mark = ranges.some(([ra, rb]) => a >= ra && b <= rb);
      out.push({ ...s, text: s.text.slice(a - pos, b - pos), mark });
    }
    pos = end;
  }
  return out;
}
