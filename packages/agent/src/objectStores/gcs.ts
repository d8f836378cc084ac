import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { GcpEnvironmentError, describeCause } from '@liftoff/core';
import type { GcpClientSettings } from '../environments/types.js';
import type { ObjectStore, ObjectStoreDeps } from './types.js';

const GOOGLE_STORAGE = 'https://storage.googleapis.com';
/** Google's bucket naming rules: 3-63 of a-z 0-9 - _ . (up to 222 with dots), starting and ending alnum. */
const BUCKET = /^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$/;
/** V4 signed URLs live at most 7 days. */
const MAX_SIGNED_SECONDS = 7 * 24 * 3600;
/** Resumable upload chunks must be multiples of 256 KiB; 8 MiB is what Google's clients default to. */
export const CHUNK_BYTES = 32 * 256 * 1024;

/** `gs://bucket/key` → bucket and key (the key may be empty: a bucket, or a prefix ending in "/"). */
export function parseGsUri(uri: string): { bucket: string; key: string } {
  const m = /^gs:\/\/([^/]+)(?:\/(.*))?$/.exec(uri);
  const bucket = m?.[1] ?? '';
  if (!m || !BUCKET.test(bucket) || (bucket.length > 63 && !bucket.includes('.'))) {
    throw new GcpEnvironmentError(
      `"${uri}" is not a GCS URI: write gs://<bucket>/<key>, with a bucket name of 3-63 lower-case letters, digits, "-", "_" or ".".`,
    );
  }
  return { bucket, key: m[2] ?? '' };
}

/**
 * `gs://` through the GCS JSON API, as plain REST with the agent's one token source: verify = bucket GET,
 * upload = a resumable upload in 8 MiB chunks (a build context can be large; a failed chunk does not restart the
 * whole file), presign = a V4 signed GET (signed by the auth library: locally with a service-account key, else IAM
 * signBlob as the service account). Hand-written on purpose: three calls and a documented signing recipe, where
 * @google-cloud/storage would add 91 packages to every gcp agent. STORAGE_EMULATOR_HOST (read by the CLI) replaces
 * https://storage.googleapis.com, for test servers.
 */
export class GcsObjectStore implements ObjectStore {
  readonly scheme = 'gs';
  private readonly gcp: GcpClientSettings;
  private readonly endpoint: string;

  constructor(deps: ObjectStoreDeps) {
    if (!deps.gcp) {
      throw new GcpEnvironmentError(
        'gs:// stores need Google Cloud credentials: add environment: {type: gcp, project, region} to the agent config.',
      );
    }
    this.gcp = deps.gcp;
    this.endpoint = deps.gcp.endpoints.storage ?? GOOGLE_STORAGE;
  }

  private async call(url: string, init: RequestInit = {}): Promise<Response> {
    const token = await this.gcp.accessToken();
    const headers = new Headers(init.headers);
    headers.set('authorization', `Bearer ${token}`);
    return fetch(url, { ...init, headers, redirect: 'manual' });
  }

  async verify(uri: string): Promise<void> {
    const { bucket } = parseGsUri(uri);
    const where = `builder.build-context-store ${uri}`;
    let res: Response;
    try {
      res = await this.call(`${this.endpoint}/storage/v1/b/${encodeURIComponent(bucket)}?fields=name`);
    } catch (e) {
      if (e instanceof GcpEnvironmentError) throw e;
      throw new GcpEnvironmentError(
        `${where}: could not reach ${this.endpoint} (${describeCause(e)}); check the network (and STORAGE_EMULATOR_HOST).`,
        e,
      );
    }
    if (res.ok) return;
    const detail = await googleError(res);
    if (res.status === 404) {
      throw new GcpEnvironmentError(
        `${where}: bucket "${bucket}" does not exist; create it (gcloud storage buckets create gs://${bucket} --project ${this.gcp.project} --location ${this.gcp.region}) or fix the URI.`,
      );
    }
    if (res.status === 401 || res.status === 403) {
      throw new GcpEnvironmentError(
        `${where}: bucket "${bucket}" is not accessible to the agent's credentials (HTTP ${res.status}: ${detail}); grant the agent's principal roles/storage.legacyBucketReader (storage.buckets.get) and roles/storage.objectUser on the bucket.`,
      );
    }
    throw new GcpEnvironmentError(`${where}: could not check bucket "${bucket}" (HTTP ${res.status}: ${detail}).`);
  }

  async upload(uri: string, body: Readable | Buffer, opts: { contentType?: string } = {}): Promise<void> {
    const { bucket, key } = objectOf(uri);
    const contentType = opts.contentType ?? 'application/octet-stream';
    const start = `${this.endpoint}/upload/storage/v1/b/${encodeURIComponent(bucket)}/o?uploadType=resumable&name=${encodeURIComponent(key)}`;
    const res = await this.call(start, {
      method: 'POST',
      headers: { 'content-type': 'application/json; charset=utf-8', 'x-upload-content-type': contentType },
      body: JSON.stringify({ name: key, contentType }),
    });
    const session = res.headers.get('location');
    if (!res.ok || !session) {
      throw new GcpEnvironmentError(
        `Uploading to ${uri} failed: starting the resumable upload answered HTTP ${res.status} (${await googleError(res)}).`,
      );
    }
    // The session URI must be on the endpoint the token was meant for: never send it anywhere else.
    if (new URL(session).origin !== new URL(this.endpoint).origin) {
      throw new GcpEnvironmentError(`Uploading to ${uri} failed: the upload session is on another host (${session}).`);
    }
    let offset = 0;
    let pending = Buffer.alloc(0);
    /** Sends the next chunk (the last one with the total size); true once GCS has the whole object. */
    const send = async (final: boolean): Promise<boolean> => {
      // Non-final chunks are whole multiples of 256 KiB; the last carries the total size.
      const chunk = pending.subarray(0, final ? pending.length : CHUNK_BYTES);
      const total = final ? String(offset + pending.length) : '*';
      const range = chunk.length ? `bytes ${offset}-${offset + chunk.length - 1}/${total}` : `bytes */${total}`;
      const r = await this.call(session, { method: 'PUT', headers: { 'content-range': range }, body: chunk });
      if (final && r.ok) return true;
      if (r.status !== 308) {
        throw new GcpEnvironmentError(
          `Uploading to ${uri} failed at byte ${offset}: HTTP ${r.status} (${await googleError(r)}).`,
        );
      }
      // 308: what GCS has persisted so far ("bytes=0-N", or nothing yet); the rest is sent again.
      const persisted = /bytes=0-(\d+)/.exec(r.headers.get('range') ?? '');
      const committed = persisted ? Number(persisted[1]) + 1 : 0;
      if (committed < offset || committed > offset + chunk.length || (final && committed === offset)) {
        throw new GcpEnvironmentError(
          `Uploading to ${uri} failed: after byte ${offset} the server reported ${committed} bytes persisted.`,
        );
      }
      pending = pending.subarray(committed - offset);
      offset = committed;
      return false;
    };
    const source: AsyncIterable<Buffer | string> | Iterable<Buffer> = Buffer.isBuffer(body) ? [body] : body;
    for await (const part of source) {
      pending = Buffer.concat([pending, typeof part === 'string' ? Buffer.from(part) : part]);
      while (pending.length > CHUNK_BYTES) await send(false);
    }
    // What is left (at most one chunk) ends the upload; a final chunk GCS took only part of is finished anew.
    while (!(await send(true)));
  }

  async presign(uri: string, ttlSeconds: number): Promise<string> {
    const { bucket, key } = objectOf(uri);
    if (!Number.isInteger(ttlSeconds) || ttlSeconds < 1 || ttlSeconds > MAX_SIGNED_SECONDS) {
      throw new GcpEnvironmentError(`A signed GCS URL lives 1 to ${MAX_SIGNED_SECONDS} seconds (got ${ttlSeconds}).`);
    }
    const email = await this.gcp.auth
      .getCredentials()
      .then((c) => c.client_email)
      .catch(() => undefined);
    if (!email) {
      throw new GcpEnvironmentError(
        `Cannot sign a URL for ${uri}: the agent's Google credentials name no service account (user credentials cannot sign); run the agent as a service account (a key file, impersonation, or the metadata server).`,
      );
    }
    return signedGetUrl({ endpoint: this.endpoint, bucket, key, email, ttlSeconds, now: new Date() }, async (text) => {
      const iam = this.gcp.endpoints.iamcredentials;
      try {
        return await this.gcp.auth.sign(text, iam ? `${iam}/v1/projects/-/serviceAccounts/` : undefined);
      } catch (e) {
        throw new GcpEnvironmentError(
          `Signing a URL for ${uri} as ${email} failed (${describeCause(e)}); without a key file the service account needs roles/iam.serviceAccountTokenCreator on itself (IAM signBlob).`,
          e,
        );
      }
    });
  }
}

/**
 * Google's V4 signing recipe for a GET (cloud.google.com/storage/docs/access-control/signing-urls-manually): a
 * canonical request of the path-style object URL with the `X-Goog-*` query and the host header, its SHA-256 in the
 * string to sign, an RSA-SHA256 signature (`sign`, base64) written as hex.
 */
export async function signedGetUrl(
  p: { endpoint: string; bucket: string; key: string; email: string; ttlSeconds: number; now: Date },
  sign: (text: string) => Promise<string>,
): Promise<string> {
  const url = new URL(p.endpoint);
  const stamp = p.now
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d{3}/, '');
  const day = stamp.slice(0, 8);
  const scope = `${day}/auto/storage/goog4_request`;
  const path = `/${rfc3986(p.bucket)}/${p.key.split('/').map(rfc3986).join('/')}`;
  const query: Array<[string, string]> = [
    ['X-Goog-Algorithm', 'GOOG4-RSA-SHA256'],
    ['X-Goog-Credential', `${p.email}/${scope}`],
    ['X-Goog-Date', stamp],
    ['X-Goog-Expires', String(p.ttlSeconds)],
    ['X-Goog-SignedHeaders', 'host'],
  ];
  const canonicalQuery = query.map(([k, v]) => `${rfc3986(k)}=${rfc3986(v)}`).join('&');
  const canonical = ['GET', path, canonicalQuery, `host:${url.host}`, '', 'host', 'UNSIGNED-PAYLOAD'].join('\n');
  const toSign = ['GOOG4-RSA-SHA256', stamp, scope, createHash('sha256').update(canonical).digest('hex')].join('\n');
  const signature = Buffer.from(await sign(toSign), 'base64').toString('hex');
  return `${url.origin}${path}?${canonicalQuery}&X-Goog-Signature=${signature}`;
}

/** RFC 3986 percent-encoding (encodeURIComponent leaves !'()* alone; the canonical request must not). */
const rfc3986 = (s: string): string =>
  encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);

function objectOf(uri: string): { bucket: string; key: string } {
  const parsed = parseGsUri(uri);
  if (!parsed.key || parsed.key.endsWith('/')) {
    throw new GcpEnvironmentError(`"${uri}" names no object: add the object's name after the bucket.`);
  }
  return parsed;
}

/** The message of Google's error JSON (`{error: {code, message, status}}`), else the start of the body. */
async function googleError(res: Response): Promise<string> {
  const text = await res.text().catch(() => '');
  try {
    const err = (JSON.parse(text) as { error?: { message?: string; status?: string } }).error;
    if (err?.message) return err.status ? `${err.status}: ${err.message}` : err.message;
  } catch {
    // not JSON
  }
  return text.slice(0, 200) || res.statusText;
}
