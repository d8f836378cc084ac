import { createHash, randomBytes, type KeyObject } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { googleError, json, listen, readBody } from './http.js';
import { verifyV4 } from './signedUrl.js';

/**
 * A small fake of the GCS JSON API on loopback (there is no GCS emulator on npm or Debian): bucket GET (404 for a
 * missing one), media / multipart / resumable uploads, object GET (metadata, `alt=media`, and the `/download` path),
 * and path-style V4 signed GETs, whose signature it checks with the public key of the signing service account.
 * Errors are Google's JSON. `acceptToken` decides which bearer tokens are good (else 401, as GCS answers). The JSON
 * API is served under `/storage/v1` (GCS's path, which Liftoff uses) and under `/` (where @google-cloud/storage sends
 * it when STORAGE_EMULATOR_HOST is set, as fake-gcs-server serves it).
 */
export interface FakeGcs {
  url: string;
  host: string;
  buckets: Map<string, Map<string, StoredObject>>;
  /** Requests by kind, e.g. `resumable-chunk`, for tests that count them. */
  calls: string[];
  /** Public keys by service-account email, for signed URLs. */
  signers: Map<string, KeyObject>;
}

export interface StoredObject {
  data: Buffer;
  contentType: string;
  generation: string;
}

interface Session {
  bucket: string;
  name: string;
  contentType: string;
  parts: Buffer[];
  received: number;
}

export async function startFakeGcs(opts: { buckets?: string[]; acceptToken?: (token: string) => boolean } = {}) {
  const buckets = new Map<string, Map<string, StoredObject>>((opts.buckets ?? []).map((b) => [b, new Map()]));
  const sessions = new Map<string, Session>();
  const calls: string[] = [];
  const signers = new Map<string, KeyObject>();
  let host = '';

  const objectJson = (bucket: string, name: string, o: StoredObject) => ({
    kind: 'storage#object',
    id: `${bucket}/${name}/${o.generation}`,
    name,
    bucket,
    generation: o.generation,
    metageneration: '1',
    contentType: o.contentType,
    size: String(o.data.length),
    md5Hash: createHash('md5').update(o.data).digest('base64'),
    crc32c: crc32c(o.data),
    etag: 'CAE=',
    storageClass: 'STANDARD',
    timeCreated: new Date().toISOString(),
    updated: new Date().toISOString(),
    selfLink: `http://${host}/storage/v1/b/${bucket}/o/${encodeURIComponent(name)}`,
    mediaLink: `http://${host}/download/storage/v1/b/${bucket}/o/${encodeURIComponent(name)}?generation=${o.generation}&alt=media`,
  });
  const store = (bucket: string, name: string, data: Buffer, contentType: string) => {
    const o = { data, contentType, generation: String(Date.now() * 1000 + Math.floor(Math.random() * 1000)) };
    buckets.get(bucket)?.set(name, o);
    return objectJson(bucket, name, o);
  };

  const authorized = (req: IncomingMessage, res: ServerResponse): boolean => {
    if (!opts.acceptToken) return true;
    const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    if (token && opts.acceptToken(token)) return true;
    googleError(res, 401, 'UNAUTHENTICATED', 'Request is missing valid authentication credential.');
    return false;
  };

  const { url, host: h } = await listen(async (req, res) => {
    const u = new URL(req.url ?? '/', `http://${host}`);
    const path = u.pathname;
    const method = req.method ?? 'GET';
    // A signed GET: path-style /<bucket>/<object>, no Authorization, the signature in the query.
    if (method === 'GET' && u.searchParams.has('X-Goog-Signature')) {
      calls.push('signed-get');
      const problem = verifyV4(req.url ?? '', req.headers.host ?? '', signers);
      if (problem) return xmlError(res, 403, 'SignatureDoesNotMatch', problem);
      const [, bucket = '', ...rest] = (req.url ?? '').split('?')[0]!.split('/');
      const o = buckets.get(decodeURIComponent(bucket))?.get(rest.map(decodeURIComponent).join('/'));
      if (!o) return xmlError(res, 404, 'NoSuchKey', 'The specified key does not exist.');
      res.writeHead(200, { 'content-type': o.contentType, 'content-length': o.data.length });
      return void res.end(o.data);
    }
    if (!authorized(req, res)) return;
    let m: RegExpExecArray | null;
    if ((m = /^(?:\/storage\/v1)?\/b\/([^/]+)$/.exec(path)) && method === 'GET') {
      calls.push('bucket-get');
      const bucket = decodeURIComponent(m[1] as string);
      if (!buckets.has(bucket)) return googleError(res, 404, 'NOT_FOUND', 'The specified bucket does not exist.');
      return json(res, 200, {
        kind: 'storage#bucket',
        id: bucket,
        name: bucket,
        location: 'US-CENTRAL1',
        storageClass: 'STANDARD',
      });
    }
    // Object listing (gcloud looks at the destination "directory" before a copy): prefix and delimiter, one page.
    if ((m = /^(?:\/storage\/v1)?\/b\/([^/]+)\/o$/.exec(path)) && method === 'GET') {
      calls.push('object-list');
      const bucket = decodeURIComponent(m[1] as string);
      const objects = buckets.get(bucket);
      if (!objects) return googleError(res, 404, 'NOT_FOUND', 'The specified bucket does not exist.');
      const prefix = u.searchParams.get('prefix') ?? '';
      const delimiter = u.searchParams.get('delimiter');
      const items: unknown[] = [];
      const prefixes = new Set<string>();
      for (const [name, o] of [...objects].sort(([a], [b]) => (a < b ? -1 : 1))) {
        if (!name.startsWith(prefix)) continue;
        const cut = delimiter ? name.indexOf(delimiter, prefix.length) : -1;
        if (cut >= 0) prefixes.add(name.slice(0, cut + (delimiter as string).length));
        else items.push(objectJson(bucket, name, o));
      }
      return json(res, 200, {
        kind: 'storage#objects',
        ...(items.length ? { items } : {}),
        ...(prefixes.size ? { prefixes: [...prefixes] } : {}),
      });
    }
    if ((m = /^\/upload\/storage\/v1\/b\/([^/]+)\/o$/.exec(path))) {
      const bucket = decodeURIComponent(m[1] as string);
      if (!buckets.has(bucket)) return googleError(res, 404, 'NOT_FOUND', 'The specified bucket does not exist.');
      const type = u.searchParams.get('uploadType');
      if (method === 'POST' && type === 'media') {
        calls.push('media-upload');
        const name = u.searchParams.get('name');
        if (!name) return googleError(res, 400, 'INVALID_ARGUMENT', 'Required parameter: name');
        return json(
          res,
          200,
          store(bucket, name, await readBody(req), req.headers['content-type'] ?? 'application/octet-stream'),
        );
      }
      if (method === 'POST' && type === 'multipart') {
        calls.push('multipart-upload');
        const mpBody = await readBody(req);
        const parsed = parseMultipart(req.headers['content-type'] ?? '', mpBody);
        if (!parsed) return googleError(res, 400, 'INVALID_ARGUMENT', 'Invalid multipart request.');
        const name = (parsed.metadata.name as string | undefined) ?? u.searchParams.get('name');
        if (!name) return googleError(res, 400, 'INVALID_ARGUMENT', 'Required parameter: name');
        return json(res, 200, store(bucket, name, parsed.data, parsed.contentType));
      }
      if (method === 'POST' && type === 'resumable' && !u.searchParams.has('upload_id')) {
        calls.push('resumable-start');
        const body = await readBody(req);
        const metadata = body.length
          ? (JSON.parse(body.toString('utf8')) as { name?: string; contentType?: string })
          : {};
        const name = metadata.name ?? u.searchParams.get('name');
        if (!name) return googleError(res, 400, 'INVALID_ARGUMENT', 'Required parameter: name');
        const id = randomBytes(12).toString('hex');
        const contentType =
          (req.headers['x-upload-content-type'] as string | undefined) ??
          metadata.contentType ??
          'application/octet-stream';
        sessions.set(id, { bucket, name, contentType, parts: [], received: 0 });
        const location = `http://${host}/upload/storage/v1/b/${encodeURIComponent(bucket)}/o?uploadType=resumable&name=${encodeURIComponent(name)}&upload_id=${id}`;
        res.writeHead(200, { location, 'x-guploader-uploadid': id, 'content-length': 0 });
        return void res.end();
      }
      if (method === 'PUT' && type === 'resumable')
        return resumableChunk(req, res, u.searchParams.get('upload_id') ?? '');
    }
    if ((m = /^(?:\/download)?(?:\/storage\/v1)?\/b\/([^/]+)\/o\/(.+)$/.exec(path)) && method === 'GET') {
      const bucket = decodeURIComponent(m[1] as string);
      const name = decodeURIComponent(m[2] as string);
      if (!buckets.has(bucket)) return googleError(res, 404, 'NOT_FOUND', 'The specified bucket does not exist.');
      const o = buckets.get(bucket)?.get(name);
      if (!o) return googleError(res, 404, 'NOT_FOUND', `No such object: ${bucket}/${name}`);
      if (u.searchParams.get('alt') === 'media') {
        calls.push('object-media');
        res.writeHead(200, {
          'content-type': o.contentType,
          'content-length': o.data.length,
          'x-goog-generation': o.generation,
          'x-goog-hash': `md5=${createHash('md5').update(o.data).digest('base64')}`,
        });
        return void res.end(o.data);
      }
      calls.push('object-get');
      return json(res, 200, objectJson(bucket, name, o));
    }
    calls.push(`unknown ${method} ${path}`);
    return googleError(res, 404, 'NOT_FOUND', `The fake GCS does not serve ${method} ${path}.`);
  });
  host = h;

  /** A resumable chunk: `Content-Range: bytes a-b/<total or *>`, or `bytes *\/<total>` to finish or ask. */
  async function resumableChunk(req: IncomingMessage, res: ServerResponse, id: string): Promise<void> {
    calls.push('resumable-chunk');
    const s = sessions.get(id);
    if (!s) return googleError(res, 404, 'NOT_FOUND', 'No such upload session.');
    const body = await readBody(req);
    const range = /^bytes (?:(\d+)-(\d+)|\*)\/(\d+|\*)$/.exec(
      req.headers['content-range'] ?? `bytes 0-${body.length - 1}/${body.length}`,
    );
    if (!range) return googleError(res, 400, 'INVALID_ARGUMENT', 'Bad Content-Range.');
    if (range[1] !== undefined) {
      const start = Number(range[1]);
      const end = Number(range[2]);
      if (start !== s.received || end - start + 1 !== body.length) {
        return googleError(
          res,
          400,
          'INVALID_ARGUMENT',
          `Chunk at ${start} does not follow the ${s.received} bytes received.`,
        );
      }
      const total = range[3];
      if (total === '*' && body.length % (256 * 1024) !== 0) {
        return googleError(res, 400, 'INVALID_ARGUMENT', 'Non-final chunks must be multiples of 256 KiB.');
      }
      s.parts.push(body);
      s.received += body.length;
    }
    const total = range[3];
    if (total !== '*' && Number(total) === s.received) {
      sessions.delete(id);
      return json(res, 200, store(s.bucket, s.name, Buffer.concat(s.parts), s.contentType));
    }
    res.writeHead(
      308,
      s.received ? { range: `bytes=0-${s.received - 1}`, 'content-length': 0 } : { 'content-length': 0 },
    );
    res.end();
  }

  return { url, host, buckets, calls, signers } satisfies FakeGcs;
}

/**
 * multipart/related: a JSON metadata part, then the data part. Lines end in CRLF (Node clients) or LF (gcloud's
 * Python email generator), and the boundary may be quoted either way (gcloud: single quotes); GCS takes all of them.
 */
function parseMultipart(
  type: string,
  body: Buffer,
): { metadata: Record<string, unknown>; data: Buffer; contentType: string } | undefined {
  const b = /boundary=(?:"([^"]+)"|'([^']+)'|([^;\s]+))/i.exec(type);
  const boundary = b?.[1] ?? b?.[2] ?? b?.[3];
  if (!/^multipart\/related/i.test(type) || !boundary) return undefined;
  // latin1 maps bytes 1:1 to chars, so the data part comes back byte for byte.
  const text = body.toString('latin1');
  const delimiter = new RegExp(
    `(?:^|\r?\n)--${boundary.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(?:--)?[ \t]*(?:\r?\n|$)`,
  );
  const parts = text.split(delimiter).slice(1, -1);
  const parsed = parts.map((part) => {
    const m = /\r?\n\r?\n/.exec(part);
    return m ? { headers: part.slice(0, m.index), body: part.slice(m.index + m[0].length) } : undefined;
  });
  const [meta, data] = parsed;
  if (!meta || !data) return undefined;
  const contentType = /content-type:\s*([^\r\n]+)/i.exec(data.headers)?.[1] ?? 'application/octet-stream';
  return {
    metadata: JSON.parse(meta.body) as Record<string, unknown>,
    data: Buffer.from(data.body, 'latin1'),
    contentType,
  };
}

/** Signed URLs answer in the XML API's error format, as GCS does for them. */
function xmlError(res: ServerResponse, code: number, name: string, message: string): void {
  res.writeHead(code, { 'content-type': 'application/xml; charset=UTF-8' });
  res.end(`<?xml version='1.0' encoding='UTF-8'?><Error><Code>${name}</Code><Message>${message}</Message></Error>`);
}

/**
 * CRC32C (Castagnoli), base64 of the big-endian value, as GCS reports it; Google's clients check uploads against it.
 * Node 20 has no CRC32C, and a fake should not borrow the checksum of the client it is checked against: ten lines.
 */
const CRC32C_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
export function crc32c(data: Buffer): string {
  let crc = 0xffffffff;
  for (const byte of data) crc = (CRC32C_TABLE[(crc ^ byte) & 0xff] as number) ^ (crc >>> 8);
  const out = Buffer.alloc(4);
  out.writeUInt32BE((crc ^ 0xffffffff) >>> 0);
  return out.toString('base64');
}
