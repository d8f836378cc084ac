import { gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { anyJson, arbitraryFor, hostileNumber, hostileString, type JsonSchema } from './schemaArbitrary.js';

/** One operation of the OpenAPI document, as the fuzzer needs it. */
export interface Operation {
  method: string;
  path: string;
  params: { name: string; in: 'path' | 'query'; required: boolean; schema: JsonSchema }[];
  bodySchema: JsonSchema | undefined;
  bodyTypes: string[];
}

/** Who sends a request: a key name the suite maps to a real key, or none / a wrong one. */
export type Caller = 'reader' | 'tenantAdmin' | 'member' | 'agent' | 'none' | 'wrong';

export interface FuzzRequest {
  caller: Caller;
  method: string;
  url: string;
  contentType: string | undefined;
  body: Buffer | undefined;
}

interface OpenApiDoc {
  paths: Record<string, Record<string, OpenApiOperation>>;
}
interface OpenApiOperation {
  parameters?: { name: string; in: string; required?: boolean; schema?: JsonSchema }[];
  requestBody?: { content?: Record<string, { schema?: JsonSchema }> };
}

export function operationsOf(doc: OpenApiDoc): Operation[] {
  const ops: Operation[] = [];
  for (const [path, methods] of Object.entries(doc.paths))
    for (const [method, op] of Object.entries(methods)) {
      const content = op.requestBody?.content ?? {};
      ops.push({
        method: method.toUpperCase(),
        path,
        params: (op.parameters ?? [])
          .filter((p) => p.in === 'path' || p.in === 'query')
          .map((p) => ({
            name: p.name,
            in: p.in as 'path' | 'query',
            required: p.required ?? false,
            schema: p.schema ?? {},
          })),
        bodySchema: Object.values(content)[0]?.schema,
        bodyTypes: Object.keys(content),
      });
    }
  return ops;
}

/** Nested `depth` deep, as `[[[...]]]` or `{"a":{"a":...}}`: the shape that used to overflow validation. */
export const deepJson = (depth: number, kind: 'array' | 'object'): string =>
  kind === 'array' ? '['.repeat(depth) + ']'.repeat(depth) : '{"a":'.repeat(depth) + '1' + '}'.repeat(depth);

/**
 * The request body: mostly a value of the operation's schema, sometimes any JSON, nesting thousands deep, bytes
 * that are not JSON, binary content types where JSON is expected, or nothing.
 */
function bodyFor(op: Operation): fc.Arbitrary<{ contentType: string | undefined; body: Buffer | undefined }> {
  const json = (v: unknown) => ({ contentType: 'application/json', body: Buffer.from(JSON.stringify(v) ?? 'null') });
  const declared = op.bodyTypes[0];
  const ofSchema =
    declared && declared !== 'application/json'
      ? fc.uint8Array({ maxLength: 512 }).map((b) => ({ contentType: declared, body: Buffer.from(b) }))
      : op.bodySchema?.type === 'string'
        ? // Log uploads: the declared body is a string sent as text.
          fc
            .oneof(fc.string({ maxLength: 300 }), hostileString)
            .map((s) => ({ contentType: 'text/plain; charset=utf-8', body: Buffer.from(s) }))
        : arbitraryFor(op.bodySchema).map(json);
  return fc.oneof(
    { weight: 30, arbitrary: ofSchema },
    { weight: 1, arbitrary: anyJson.map(json) },
    {
      weight: 1,
      arbitrary: fc
        .tuple(fc.constantFrom(64, 1_000, 5_000, 50_000), fc.constantFrom<'array' | 'object'>('array', 'object'))
        .map(([d, k]) => ({ contentType: 'application/json', body: Buffer.from(deepJson(d, k)) })),
    },
    {
      weight: 1,
      arbitrary: fc
        .uint8Array({ maxLength: 256 })
        .map((b) => ({ contentType: 'application/json', body: Buffer.from(b) })),
    },
    {
      weight: 1,
      arbitrary: fc
        .tuple(
          fc.constantFrom('application/gzip', 'application/octet-stream', 'text/plain', 'multipart/form-data', 'x/y'),
          fc.uint8Array({ maxLength: 256 }),
        )
        .map(([t, b]) => ({ contentType: t, body: Buffer.from(b) })),
    },
    {
      weight: 1,
      arbitrary: fc.constant({ contentType: 'application/gzip', body: gzipSync(Buffer.alloc(1 << 20)) }),
    },
    { weight: 1, arbitrary: fc.constant({ contentType: undefined, body: undefined }) },
  );
}

/** Real names and ids by what they name: `entity`, `queue`, and the collections ids belong to (`runs`, ...). */
export type Pool = Record<string, string[]>;

/** The pool a path parameter draws from: by its name, or for `{id}` by the collection before it. */
const poolKey = (path: string, name: string): string =>
  name === 'id' ? (/\/api\/([a-z-]+)\/\{id\}/.exec(path)?.[1] ?? 'any') : name;

function paramValue(schema: JsonSchema, own: string[], all: string[]): fc.Arbitrary<string> {
  const fromSchema = arbitraryFor(schema).map((v) => (typeof v === 'string' ? v : JSON.stringify(v)));
  return fc.oneof(
    // The first of a pool is the fuzzer's own (a name it may use), so handlers run to the end more often.
    { weight: own.length ? 5 : 0, arbitrary: fc.constant(own[0] ?? 'x') },
    { weight: own.length ? 4 : 0, arbitrary: fc.constantFrom(...(own.length ? own : ['x'])) },
    { weight: 2, arbitrary: fc.constantFrom(...all) },
    { weight: 2, arbitrary: fromSchema },
    { weight: 1, arbitrary: hostileString },
    { weight: 1, arbitrary: hostileNumber.map(String) },
  );
}

/**
 * A request to `op`. Path parameters come mostly from `pool` (real names and ids, the caller's own and other
 * tenants'), so handlers run past their lookups; the rest are generated or hostile.
 */
export function requestFor(op: Operation, pool: Pool, callers: fc.Arbitrary<Caller>): fc.Arbitrary<FuzzRequest> {
  const pathParams = op.params.filter((p) => p.in === 'path');
  const queryParams = op.params.filter((p) => p.in === 'query');
  const all = Object.values(pool).flat();
  const value = (p: Operation['params'][number]) => paramValue(p.schema, pool[poolKey(op.path, p.name)] ?? [], all);
  return fc
    .record({
      caller: callers,
      path: fc.tuple(...pathParams.map(value)),
      query: fc.tuple(...queryParams.map((p) => fc.option(value(p), { freq: p.required ? 8 : 2 }))),
      rawPath: fc.boolean(),
      body:
        op.method === 'GET' || op.method === 'DELETE'
          ? fc.constant({ contentType: undefined, body: undefined })
          : bodyFor(op),
    })
    .map(({ caller, path, query, rawPath, body }) => {
      let url = op.path;
      pathParams.forEach((p, i) => {
        // Lone surrogates cannot be percent-encoded; the replacement character stands in (as String#toWellFormed).
        const v = (path[i] ?? '').replace(/\p{Cs}/gu, '\ufffd');
        // Mostly encoded as a client would; sometimes raw, so the router sees slashes, dots and percent signs.
        url = url.replace(`{${p.name}}`, rawPath ? v.replace(/[?#\s]/g, '_') : encodeURIComponent(v));
      });
      const qs = new URLSearchParams();
      queryParams.forEach((p, i) => {
        const v = query[i];
        if (v !== null && v !== undefined) qs.set(p.name, v);
      });
      const search = qs.toString();
      return { caller, method: op.method, url: search ? `${url}?${search}` : url, ...body };
    });
}
