import { createHash, createVerify, type KeyObject } from 'node:crypto';

/**
 * Checks a path-style V4 signed GET the way GCS documents it (signing-urls-manually): rebuilds the canonical request
 * from the URL as received and the Host header, the string to sign, and verifies the hex RSA-SHA256 signature with
 * the public key of the service account the credential names. Also refuses an expired or future-dated URL. Returns
 * what is wrong, or undefined. Written apart from Liftoff's signer and cross-checked with @google-cloud/storage's.
 */
export function verifyV4(rawUrl: string, host: string, signers: Map<string, KeyObject>): string | undefined {
  const [path = '', query = ''] = rawUrl.split('?');
  const params = query.split('&').map((kv) => kv.split('=') as [string, string?]);
  const get = (k: string) => {
    const v = params.find(([key]) => key === k)?.[1];
    return v === undefined ? undefined : decodeURIComponent(v);
  };
  if (get('X-Goog-Algorithm') !== 'GOOG4-RSA-SHA256') return 'X-Goog-Algorithm must be GOOG4-RSA-SHA256.';
  const credential = get('X-Goog-Credential') ?? '';
  const [email = '', ...scopeParts] = credential.split('/');
  const scope = scopeParts.join('/');
  const stamp = get('X-Goog-Date') ?? '';
  const expires = Number(get('X-Goog-Expires'));
  const signature = get('X-Goog-Signature') ?? '';
  const signedHeaders = get('X-Goog-SignedHeaders') ?? '';
  const key = signers.get(email);
  if (!key) return `Unknown signer ${email}.`;
  if (!/^\d{8}\/auto\/storage\/goog4_request$/.test(scope) || !stamp.startsWith(scope.slice(0, 8))) {
    return 'The credential scope does not match the date.';
  }
  const at = Date.UTC(
    +stamp.slice(0, 4),
    +stamp.slice(4, 6) - 1,
    +stamp.slice(6, 8),
    +stamp.slice(9, 11),
    +stamp.slice(11, 13),
    +stamp.slice(13, 15),
  );
  if (!Number.isInteger(expires) || expires < 1 || expires > 604800) return 'X-Goog-Expires must be 1 to 604800.';
  if (Date.now() > at + expires * 1000) return 'Request has expired.';
  if (Date.now() + 15 * 60_000 < at) return 'Request date is in the future.';
  if (signedHeaders !== 'host') return `This fake signs only the host header (got ${signedHeaders}).`;
  // The canonical query: every parameter but the signature, sorted, as sent (already percent-encoded).
  const canonicalQuery = params
    .filter(([k]) => k !== 'X-Goog-Signature')
    .map(([k, v]) => `${k}=${v ?? ''}`)
    .sort()
    .join('&');
  const verifies = (signedHost: string) => {
    const canonical = ['GET', path, canonicalQuery, `host:${signedHost}`, '', 'host', 'UNSIGNED-PAYLOAD'].join('\n');
    const toSign = ['GOOG4-RSA-SHA256', stamp, scope, createHash('sha256').update(canonical).digest('hex')].join('\n');
    return createVerify('RSA-SHA256').update(toSign).verify(key, Buffer.from(signature, 'hex'));
  };
  // The Host header as sent (host:port off the default port). @google-cloud/storage signs the hostname without the
  // port (signer.js: `fqdn.hostname`), which on GCS's port 443 is the same thing; accepted too, so its URLs check.
  const ok = verifies(host) || verifies(host.replace(/:\d+$/, ''));
  return ok ? undefined : 'The request signature we calculated does not match the signature you provided.';
}
