/** What a secret value printed by a job becomes in its shipped log. */
export const MASK = '***';

/** Lines of a multi-line secret (a PEM key, a JSON key file) are masked one by one too, when at least this long. */
const MIN_LINE = 4;
/** Most text held back while it may still turn out to be a value (beyond the longest value). */
const HOLD_LIMIT = 256 * 1024;

/**
 * Masks a run's secret values in its log as the job prints it, in pieces. A value split across two writes (or two
 * reads of the job's pipe) is still masked: the end of the text that could be the start of a secret is held back
 * until the next piece (or `end()`) shows whether it is one. Only such a possible start is held, so ordinary
 * output is shipped at once.
 *
 * Hand-written: log-masking libraries (e.g. GitHub's runner) are not packages for Node; the job is small and its
 * edge cases (overlaps, holds) are tested in secretMask.test.ts. Masking catches a job that echoes a secret by
 * accident; a job set on leaking one can always encode it first, which no masking can see.
 */
export class SecretMasker {
  private patterns: string[] = [];
  private carry = '';

  /** Adds values to mask (each whole, and each of its lines of at least 4 characters). */
  add(values: Iterable<string>): void {
    const set = new Set(this.patterns);
    for (const v of values) {
      if (v) set.add(v);
      const lines = v.split(/\r?\n/);
      if (lines.length > 1) for (const line of lines) if (line.trim().length >= MIN_LINE) set.add(line.trim());
    }
    // Longest first, so a value that contains another is found whole.
    this.patterns = [...set].sort((a, b) => b.length - a.length);
  }

  get active(): boolean {
    return this.patterns.length > 0;
  }

  /** The piece of `text` (after what was held) that is safe to ship now, masked; the rest is held. */
  push(text: string): string {
    if (!this.patterns.length) return text;
    const buf = this.carry + text;
    const spans = this.spans(buf);
    // Held: from the first place where the rest could be the start of a value...
    let hold = this.holdFrom(buf, 0);
    // ...or from the start of a found value that reaches past it (a shorter value inside a longer one).
    const crossing = spans.find(([s, e]) => s < hold && e > hold);
    if (crossing) {
      hold = crossing[0];
      // Output made of overlapping values ("aaaa…" for "aaaa") would be held forever: past a bound the run of
      // values is shipped masked and holding starts after it.
      if (buf.length - hold > HOLD_LIMIT) hold = this.holdFrom(buf, crossing[1]);
    }
    this.carry = buf.slice(hold);
    return applyMask(
      buf.slice(0, hold),
      spans.filter(([, e]) => e <= hold),
    );
  }

  /** Everything still held (the output ended): masked as far as it can be. */
  end(): string {
    const rest = this.carry;
    this.carry = '';
    return rest ? applyMask(rest, this.spans(rest)) : '';
  }

  /** Masks a whole text at once (notes, error messages), holding nothing. */
  maskAll(text: string): string {
    return this.patterns.length ? applyMask(text, this.spans(text)) : text;
  }

  /** Every occurrence of every pattern, merged where they overlap, in order. */
  private spans(buf: string): Array<[number, number]> {
    const found: Array<[number, number]> = [];
    for (const p of this.patterns)
      for (let i = buf.indexOf(p); i >= 0; i = buf.indexOf(p, i + 1)) found.push([i, i + p.length]);
    found.sort((a, b) => a[0] - b[0]);
    const merged: Array<[number, number]> = [];
    for (const [s, e] of found) {
      const last = merged.at(-1);
      if (last && s <= last[1]) last[1] = Math.max(last[1], e);
      else merged.push([s, e]);
    }
    return merged;
  }

  /** The first index at or after `from` where the rest of `buf` is the start of a pattern (buf.length: none). */
  private holdFrom(buf: string, from: number): number {
    const longest = this.patterns[0]?.length ?? 0;
    for (let p = Math.max(from, buf.length - longest + 1); p < buf.length; p++) {
      const c = buf.charCodeAt(p);
      const rest = buf.length - p;
      // The first character rules out almost every position before anything is compared.
      if (
        this.patterns.some(
          (pat) => pat.charCodeAt(0) === c && pat.length > rest && buf.startsWith(pat.slice(0, rest), p),
        )
      )
        return p;
    }
    return buf.length;
  }
}

function applyMask(text: string, spans: Array<[number, number]>): string {
  let out = '';
  let at = 0;
  for (const [s, e] of spans) {
    if (s >= text.length) break;
    out += text.slice(at, s) + MASK;
    at = Math.min(e, text.length);
  }
  return out + text.slice(at);
}
