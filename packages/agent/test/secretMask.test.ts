import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MASK, SecretMasker } from '../src/secretMask.js';

const masker = (...values: string[]) => {
  const m = new SecretMasker();
  m.add(values);
  return m;
};
/** Feeds `pieces` in order and returns everything shipped, the held end included. */
const ship = (m: SecretMasker, pieces: string[]) => pieces.map((p) => m.push(p)).join('') + m.end();

describe('SecretMasker', () => {
  it('masks a value printed whole, and leaves other output alone', () => {
    expect(ship(masker('hunter22'), ['token=hunter22\nok\n'])).toBe(`token=${MASK}\nok\n`);
    expect(ship(masker('hunter22'), ['nothing secret here\n'])).toBe('nothing secret here\n');
  });

  it('masks a value split across pieces, holding back only what could start one', () => {
    const m = masker('hunter22');
    expect(m.push('pass: hun')).toBe('pass: ');
    expect(m.push('ter')).toBe('');
    expect(m.push('22 done\n')).toBe(`${MASK} done\n`);
    // A held start that turns out not to be the secret is shipped with what follows.
    expect(m.push('hunt')).toBe('');
    expect(m.push('ing\n')).toBe('hunting\n');
    expect(m.push('plain\n')).toBe('plain\n');
  });

  it('masks each line of a multi-line value, overlapping and repeated occurrences, and the longest value whole', () => {
    const pem = '-----BEGIN KEY-----\nAAAABBBBCCCC\n-----END KEY-----';
    expect(ship(masker(pem), ['key line: AAAABBBBCCCC\n'])).toBe(`key line: ${MASK}\n`);
    expect(ship(masker('abab'), ['xabababx'])).toBe(`x${MASK}x`);
    expect(ship(masker('tok', 'token-123456'), ['token-123456 tok'])).toBe(`${MASK} ${MASK}`);
    expect(masker('s3cr3t!').maskAll('error: bad s3cr3t! given')).toBe(`error: bad ${MASK} given`);
  });

  it('never ships a secret, however the output is cut into pieces (property)', () => {
    fc.assert(
      fc.property(
        fc.string({ minLength: 4, maxLength: 24 }),
        fc.array(fc.string({ maxLength: 12 }), { maxLength: 6 }),
        fc.array(fc.nat(), { maxLength: 8 }),
        (secret, fillers, cuts) => {
          const text = fillers.join(secret) + secret;
          const at = [...new Set(cuts.map((c) => c % (text.length + 1)))].sort((a, b) => a - b);
          const pieces = [0, ...at].map((s, i, all) => text.slice(s, all[i + 1] ?? text.length));
          const shipped = ship(masker(secret), pieces);
          expect(shipped).not.toContain(secret);
          // What is shipped is the text masked at once: cutting changes nothing (adjacent masks may merge there).
          const collapse = (t: string) => t.replace(/(\*\*\*)+/g, MASK);
          expect(collapse(shipped)).toBe(collapse(masker(secret).maskAll(text)));
        },
      ),
      { seed: 4242, numRuns: 1000 },
    );
  });

  it('never ships a longer value whose inside is another value, however cut (property)', () => {
    fc.assert(
      fc.property(fc.string({ minLength: 6, maxLength: 20 }), fc.array(fc.nat(), { maxLength: 6 }), (long, cuts) => {
        const short = long.slice(1, 5);
        const text = `a ${long} b ${short} c ${long}`;
        const at = [...new Set(cuts.map((c) => c % (text.length + 1)))].sort((a, b) => a - b);
        const pieces = [0, ...at].map((s, i, all) => text.slice(s, all[i + 1] ?? text.length));
        expect(ship(masker(short, long), pieces)).not.toContain(long);
      }),
      { seed: 4243, numRuns: 1000 },
    );
  });
});
