import fc from 'fast-check';

/**
 * JSON Schema (the subset @fastify/swagger emits from our zod schemas) → fast-check arbitrary. Hand-written because
 * the published translators target zod 3 / fast-check 3 (zod-fast-check) or are unmaintained (json-schema-fast-check
 * 0.0.6). The values are mostly valid, so requests get past validation into the handlers and the store, with a share
 * of hostile leaves (boundary numbers, odd strings, wrong types) so validation itself is fuzzed too.
 */
export interface JsonSchema {
  type?: string | string[];
  enum?: unknown[];
  const?: unknown;
  properties?: Record<string, JsonSchema>;
  required?: string[];
  additionalProperties?: boolean | JsonSchema;
  items?: JsonSchema;
  minItems?: number;
  maxItems?: number;
  minLength?: number;
  maxLength?: number;
  pattern?: string;
  minimum?: number;
  maximum?: number;
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  allOf?: JsonSchema[];
  nullable?: boolean;
  default?: unknown;
}

/** Strings that have broken servers: traversal, NULs, SQL and shell metacharacters, huge, non-BMP, lone surrogates. */
export const hostileString = fc.constantFrom(
  '',
  ' ',
  '../../../../etc/passwd',
  '..%2f..%2fetc',
  'a\u0000b',
  "'; DROP TABLE items; --",
  '$(id)',
  '`id`',
  '%s%n%x',
  '\u202e\u0000\uffff',
  '\ud800',
  '😀'.repeat(50),
  'x'.repeat(70_000),
  '{"__proto__":{"polluted":1}}',
  '__proto__',
  'constructor',
  'NaN',
  '-1',
  '1e309',
);

export const hostileNumber = fc.constantFrom(
  -1,
  0,
  0.5,
  -0,
  2 ** 31 - 1,
  2 ** 31,
  2 ** 32,
  2 ** 53,
  2 ** 63,
  -(2 ** 63),
  Number.MAX_SAFE_INTEGER,
  Number.MAX_VALUE,
  1e-300,
);

/** Any JSON value, a little deeper and wider than fast-check's default. */
export const anyJson = fc.jsonValue({ maxDepth: 4 });

const nullableOf = (s: JsonSchema, a: fc.Arbitrary<unknown>): fc.Arbitrary<unknown> =>
  s.nullable ? fc.oneof({ weight: 5, arbitrary: a }, { weight: 1, arbitrary: fc.constant(null) }) : a;

function stringOf(s: JsonSchema): fc.Arbitrary<string> {
  if (s.pattern) {
    try {
      return fc.stringMatching(new RegExp(s.pattern)).map((v) => (s.maxLength ? v.slice(0, s.maxLength) : v));
    } catch {
      // A pattern fast-check cannot generate from: fall back to plain strings below.
    }
  }
  return fc.string({ minLength: s.minLength ?? 0, maxLength: Math.min(s.maxLength ?? 40, 200), unit: 'grapheme' });
}

function numberOf(s: JsonSchema, integer: boolean): fc.Arbitrary<number> {
  const min = s.minimum ?? (integer ? -(2 ** 40) : -1e12);
  const max = s.maximum ?? (integer ? 2 ** 40 : 1e12);
  const safeMin = Math.max(min, Number.MIN_SAFE_INTEGER);
  const safeMax = Math.min(max, Number.MAX_SAFE_INTEGER);
  const inRange = integer
    ? fc.integer({ min: Math.max(safeMin, -(2 ** 31)), max: Math.min(safeMax, 2 ** 31 - 1) })
    : fc.double({ min: safeMin, max: safeMax, noNaN: true });
  // The edges of the declared range are where storage types overflow.
  return fc.oneof(
    { weight: 6, arbitrary: inRange },
    { weight: 1, arbitrary: fc.constantFrom(safeMin, safeMax) },
    { weight: 1, arbitrary: fc.integer({ min: 0, max: 10 }) },
  );
}

/** A value for `s`, now and then with a hostile leaf. */
export function arbitraryFor(s: JsonSchema | undefined, depth = 0): fc.Arbitrary<unknown> {
  if (!s || depth > 8) return anyJson;
  const valid = validFor(s, depth);
  // One leaf in ~40 is hostile (a wrong type or a known troublemaker): most bodies then reach the handlers.
  return fc.oneof(
    { weight: 39, arbitrary: valid },
    { weight: 1, arbitrary: fc.oneof(hostileString, hostileNumber, anyJson, fc.constant(null)) },
  );
}

function validFor(s: JsonSchema, depth: number): fc.Arbitrary<unknown> {
  if (s.const !== undefined) return fc.constant(s.const);
  if (s.enum) return nullableOf(s, fc.constantFrom(...s.enum));
  const alternatives = s.anyOf ?? s.oneOf;
  if (alternatives?.length) return fc.oneof(...alternatives.map((a) => arbitraryFor(a, depth + 1)));
  if (s.allOf?.length) return arbitraryFor(s.allOf[0], depth + 1);
  const type = Array.isArray(s.type) ? s.type[0] : s.type;
  switch (type) {
    case 'string':
      return nullableOf(s, fc.oneof({ weight: 8, arbitrary: stringOf(s) }, { weight: 1, arbitrary: hostileString }));
    case 'integer':
      return nullableOf(s, numberOf(s, true));
    case 'number':
      return nullableOf(s, numberOf(s, false));
    case 'boolean':
      return nullableOf(s, fc.boolean());
    case 'null':
      return fc.constant(null);
    case 'array':
      return nullableOf(
        s,
        fc.array(arbitraryFor(s.items, depth + 1), {
          minLength: s.minItems ?? 0,
          maxLength: Math.min(s.maxItems ?? 4, 6),
        }),
      );
    case 'object':
      return nullableOf(s, objectOf(s, depth));
    default:
      return anyJson;
  }
}

function objectOf(s: JsonSchema, depth: number): fc.Arbitrary<Record<string, unknown>> {
  const props = s.properties ?? {};
  const required = new Set(s.required ?? []);
  const known = Object.keys(props);
  const record =
    known.length > 0
      ? fc.record(Object.fromEntries(known.map((k) => [k, arbitraryFor(props[k], depth + 1)])), {
          requiredKeys: known.filter((k) => required.has(k)),
        })
      : fc.constant({});
  const extraValue = typeof s.additionalProperties === 'object' ? s.additionalProperties : undefined;
  const extras =
    s.additionalProperties === false
      ? fc.constant({})
      : fc.dictionary(fc.oneof(fc.string({ maxLength: 12 }), hostileString), arbitraryFor(extraValue, depth + 1), {
          maxKeys: known.length > 0 ? 1 : 4,
        });
  return fc.tuple(record, extras).map(([r, e]) => ({ ...e, ...r }));
}
