import { createSign, type KeyObject } from 'node:crypto';
import { googleError, json, listen, readBody } from './http.js';

/**
 * A fake of IAM Credentials' `signBlob` (what a service account without a key file, e.g. on the metadata server,
 * signs with): `POST /v1/projects/-/serviceAccounts/<email>:signBlob` with `{payload: base64}` and a bearer token,
 * answering `{keyId, signedBlob}` (RSA-SHA256 with the account's private key, as Google's system-managed keys sign).
 * Refuses tokens `acceptToken` does not take (401) and accounts it has no key for (404, as IAM answers).
 */
export async function startFakeIam(opts: { keys: Map<string, KeyObject>; acceptToken: (token: string) => boolean }) {
  const calls: string[] = [];
  const { url } = await listen(async (req, res) => {
    const m = /^\/v1\/projects\/-\/serviceAccounts\/([^/:]+):signBlob$/.exec(req.url ?? '');
    if (!m || req.method !== 'POST') return googleError(res, 404, 'NOT_FOUND', `No such method ${req.url ?? ''}.`);
    const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    if (!token || !opts.acceptToken(token)) {
      return googleError(res, 401, 'UNAUTHENTICATED', 'Request had invalid authentication credentials.');
    }
    const email = decodeURIComponent(m[1] as string);
    const key = opts.keys.get(email);
    if (!key) return googleError(res, 404, 'NOT_FOUND', `Service account ${email} does not exist.`);
    const body = JSON.parse((await readBody(req)).toString('utf8')) as { payload?: string };
    if (typeof body.payload !== 'string') return googleError(res, 400, 'INVALID_ARGUMENT', 'payload is required.');
    calls.push(email);
    const signedBlob = createSign('RSA-SHA256').update(Buffer.from(body.payload, 'base64')).sign(key, 'base64');
    json(res, 200, { keyId: 'fake-key-1', signedBlob });
  });
  return { url, calls };
}
