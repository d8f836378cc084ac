import { createHash } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { SignatureV4 } from '@smithy/signature-v4';
import { AwsError } from './errors.js';
import { Sha256 } from './sha256.js';

export interface IssuedKey {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
  /** ms since the epoch; requests signed with the key after it are refused as AWS does. */
  expiresAt?: number;
}

const AUTH =
  /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, ?SignedHeaders=([^,]+), ?Signature=([0-9a-f]{64})$/;

export interface Signed {
  key: IssuedKey;
  region: string;
  service: string;
}

/**
 * Checks a request's SigV4 signature the way AWS does: a known access key id, not expired, the session token that
 * goes with it, and the signature recomputed over the signed headers and body with that key's secret (by the
 * SDK's own signer, so the fake and the clients cannot drift into agreeing on something else).
 */
export async function verifySigV4(
  req: { method: string; url: string; headers: IncomingHttpHeaders },
  body: Buffer,
  keys: ReadonlyMap<string, IssuedKey>,
  now: number,
): Promise<Signed> {
  const header = req.headers.authorization;
  const m = typeof header === 'string' ? AUTH.exec(header) : null;
  if (!m) throw new AwsError('MissingAuthenticationTokenException', 'Missing Authentication Token', 403);
  const [, keyId = '', , region = '', service = '', signedHeaders = '', signature = ''] = m;
  const key = keys.get(keyId);
  if (!key) {
    throw new AwsError('UnrecognizedClientException', 'The security token included in the request is invalid.', 403);
  }
  if (key.expiresAt !== undefined && now >= key.expiresAt) {
    throw new AwsError('ExpiredTokenException', 'The security token included in the request is expired', 400);
  }
  if (key.sessionToken !== undefined && req.headers['x-amz-security-token'] !== key.sessionToken) {
    throw new AwsError('UnrecognizedClientException', 'The security token included in the request is invalid.', 403);
  }
  const amzDate = req.headers['x-amz-date'];
  if (typeof amzDate !== 'string' || !/^\d{8}T\d{6}Z$/.test(amzDate)) {
    throw new AwsError('IncompleteSignatureException', 'X-Amz-Date is missing or malformed', 400);
  }
  // The signature covers this header's value; AWS also checks that the value is the body's hash.
  const contentHash = req.headers['x-amz-content-sha256'];
  if (typeof contentHash === 'string' && contentHash !== createHash('sha256').update(body).digest('hex')) {
    throw new AwsError(
      'XAmzContentSHA256Mismatch',
      "The provided 'x-amz-content-sha256' header does not match what was computed.",
      400,
    );
  }
  const headers: Record<string, string> = {};
  for (const name of signedHeaders.split(';')) {
    const v = req.headers[name];
    headers[name] = Array.isArray(v) ? v.join(',') : (v ?? '');
  }
  const url = new URL(req.url, 'http://fake.invalid');
  const query: Record<string, string> = {};
  url.searchParams.forEach((v, k) => (query[k] = v));
  const signer = new SignatureV4({
    credentials: { accessKeyId: key.accessKeyId, secretAccessKey: key.secretAccessKey },
    region,
    service,
    sha256: Sha256,
    // The clients sign the path as sent; normalizing again would compute a different canonical request.
    uriEscapePath: false,
    // The clients decide whether x-amz-content-sha256 is sent (and so signed); adding it here would change the set.
    applyChecksum: false,
  });
  const date = new Date(
    `${amzDate.slice(0, 4)}-${amzDate.slice(4, 6)}-${amzDate.slice(6, 8)}T${amzDate.slice(9, 11)}:${amzDate.slice(11, 13)}:${amzDate.slice(13, 15)}Z`,
  );
  const resigned = await signer.sign(
    {
      method: req.method,
      protocol: 'http:',
      hostname: (headers.host ?? '').split(':')[0] ?? '',
      path: url.pathname,
      query,
      headers,
      body,
    },
    { signingDate: date, signingRegion: region, signingService: service },
  );
  const expected = /Signature=([0-9a-f]{64})/.exec(String(resigned.headers.authorization ?? ''))?.[1];
  if (expected !== signature) {
    throw new AwsError(
      'SignatureDoesNotMatch',
      'The request signature we calculated does not match the signature you provided.',
      403,
    );
  }
  return { key, region, service };
}
