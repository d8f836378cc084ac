import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MAX_METRIC_LINE_BYTES, METRIC_MARKER, scanMetricLines, type MetricLine } from '../src/metricLines.js';

/** Scans `chunks` one after the other, as the log append does, carrying the unfinished line. */
function scanAll(chunks: string[]): { lines: MetricLine[]; refused: number; carry: string | null } {
  let carry: string | null = null;
  const lines: MetricLine[] = [];
  let refused = 0;
  for (const c of chunks) {
    const s = scanMetricLines(carry, c);
    lines.push(...s.lines);
    refused += s.refused;
    carry = s.carry;
  }
  return { lines, refused, carry };
}

/** `text` cut at the given points (sorted, deduplicated, inside the text). */
function cut(text: string, at: number[]): string[] {
  const points = [...new Set(at.map((a) => a % (text.length + 1)))].sort((a, b) => a - b);
  const out: string[] = [];
  let prev = 0;
  for (const p of points) {
    out.push(text.slice(prev, p));
    prev = p;
  }
  out.push(text.slice(prev));
  return out;
}

describe('metric lines', () => {
  it('reads numbers and the step of marked lines, and nothing else', () => {
    const text = [
      'epoch 1',
      `${METRIC_MARKER}{"step": 3, "loss": 0.5, "acc": 1, "name": "x", "nested": {"a": 1}, "ok": true, "n": null}`,
      `  ${METRIC_MARKER}{"loss": 9}`, // not at the start of the line
      `${METRIC_MARKER}{"loss": 0.25}\r`, // CRLF output
      `${METRIC_MARKER}[1, 2]`,
      `${METRIC_MARKER}{"loss": NaN}`,
      `${METRIC_MARKER}{"step": -1, "loss": 2}`,
      `${METRIC_MARKER}{"name": "only strings"}`,
      `LIFTOFF_METRICS{"loss": 1}`,
      '',
    ].join('\n');
    const s = scanMetricLines(null, text);
    expect(s.lines).toEqual([
      {
        step: 3,
        values: [
          ['loss', 0.5],
          ['acc', 1],
        ],
      },
      { step: null, values: [['loss', 0.25]] },
      { step: null, values: [['loss', 2]] },
    ]);
    // The array, the NaN (not JSON) and the object without a number.
    expect(s.refused).toBe(3);
    expect(s.carry).toBeNull();
  });

  it('finds the same lines however the output is cut into chunks', () => {
    const line = fc.oneof(
      fc
        .record({ step: fc.nat(), loss: fc.double({ noNaN: true, noDefaultInfinity: true }) })
        .map((o) => `${METRIC_MARKER}${JSON.stringify(o)}`),
      fc.string({ unit: 'grapheme', maxLength: 40 }).map((t) => t.replace(/\n/g, ' ')),
      fc.constant(METRIC_MARKER.slice(0, 7)),
    );
    fc.assert(
      fc.property(fc.array(line, { maxLength: 30 }), fc.array(fc.nat(), { maxLength: 12 }), (lines, at) => {
        const text = lines.map((l) => `${l}\n`).join('');
        const whole = scanMetricLines(null, text);
        const pieces = scanAll(cut(text, at));
        expect(pieces.lines).toEqual(whole.lines);
        expect(pieces.refused).toBe(whole.refused);
        expect(pieces.carry).toBeNull();
      }),
      { numRuns: 300, seed: 17 },
    );
  });

  it('keeps a bounded carry: a long unmarked line is one character, an over-long metric line is given up', () => {
    const plain = scanAll(['x'.repeat(100_000), 'y'.repeat(100_000)]);
    expect(plain.carry?.length).toBe(1);
    const long = scanAll([METRIC_MARKER, `{"loss": 1, "pad": "${'p'.repeat(MAX_METRIC_LINE_BYTES)}`, '"}\n']);
    expect(long.lines).toEqual([]);
    expect(long.refused).toBe(1);
    expect(long.carry).toBeNull();
    // A partial marker waits for the rest.
    expect(scanMetricLines(null, 'LIFTOFF_ME').carry).toBe('LIFTOFF_ME');
    expect(scanAll(['LIFTOFF_ME', 'TRICS {"a": 1}\n']).lines).toEqual([{ step: null, values: [['a', 1]] }]);
  });
});
