import type { FastifyRequest } from 'fastify';
import { AuthRateLimitedError, UnauthenticatedError, UploadTokenRefusedError } from '@liftoff/core';
import { authenticate, presentedKey } from './auth.js';
import type { AppContext, Principal } from './context.js';
import { UPLOAD_TOKEN_PREFIX, authenticateUploadToken } from './uploadTokenAuth.js';

/**
 * Failed-authentication limiter: per client address and per presented key prefix, at most `limit` failures in a
 * sliding window of `windowMs`; past that, further failures are answered 429 with Retry-After. Successful
 * authentication is never counted nor limited (a valid key behind the same NAT as an attacker keeps working).
 *
 * Hand-written (a sliding log of failure times) rather than @fastify/rate-limit: that plugin counts every request
 * in its own hook, before authentication is known, and has no way to count only failures or to let a valid key
 * through an exhausted bucket. This is ~50 lines with a memory bound.
 *
 * Per process and in memory: each replica limits on its own (N replicas allow N times the limit), and a restart
 * forgets. Keys are 256-bit random, so the limit is not what stops guessing; it caps the work and the log volume a
 * flood of wrong keys causes and makes it visible (the rate-limited counter of /metrics).
 */
export class AuthFailureLimiter {
  /** Failure times per bucket, oldest first, at most `limit` of them; insertion order doubles as LRU order. */
  private readonly buckets = new Map<string, number[]>();

  constructor(
    private readonly limit: number,
    private readonly windowMs: number,
    /** Buckets kept at most; past it the least recently failed are forgotten (random keys cannot exhaust memory). */
    private readonly maxBuckets = 50_000,
  ) {}

  /**
   * Records one failure in each bucket. Returns the seconds to wait when any bucket already held `limit` failures in
   * the window (the request is then refused 429), else null (answered 401 as usual).
   */
  fail(bucketKeys: string[], now: number): number | null {
    let retryAfterMs = 0;
    for (const key of bucketKeys) {
      const times = (this.buckets.get(key) ?? []).filter((t) => t > now - this.windowMs);
      if (times.length >= this.limit) {
        // Full: the failure is refused and not stored, so a client that keeps hammering is free again one window
        // after its first counted failures, not one window after it stops.
        retryAfterMs = Math.max(retryAfterMs, (times[0] ?? now) + this.windowMs - now);
      } else {
        times.push(now);
      }
      this.buckets.delete(key);
      this.buckets.set(key, times);
      while (this.buckets.size > this.maxBuckets) {
        const oldest = this.buckets.keys().next().value;
        if (oldest === undefined) break;
        this.buckets.delete(oldest);
      }
    }
    return retryAfterMs > 0 ? Math.max(1, Math.ceil(retryAfterMs / 1000)) : null;
  }
}

/** How much of a presented key names its bucket: enough to tell clients apart, never enough to be the key. */
export const KEY_PREFIX_CHARS = 12;

/** The buckets a failed request counts in: its client address and, when it presented a key, that key's prefix. */
export const failureBuckets = (ip: string, presented: string | null): string[] =>
  presented ? [`ip:${ip}`, `key:${presented.slice(0, KEY_PREFIX_CHARS)}`] : [`ip:${ip}`];

/** One limiter per app (a WeakMap, so /metrics, outside /api, shares the API's without another parameter). */
const limiters = new WeakMap<AppContext, AuthFailureLimiter>();

/**
 * Authenticates a request (an API key, or a run's upload token), counting a failure against its address and key
 * prefix; past the limit the failure is AUTH_RATE_LIMITED (429, Retry-After) instead of UNAUTHENTICATED (or
 * UPLOAD_TOKEN_REFUSED).
 */
export async function authenticateLimited(ctx: AppContext, req: FastifyRequest): Promise<Principal> {
  try {
    const presented = presentedKey(req);
    return presented?.startsWith(UPLOAD_TOKEN_PREFIX)
      ? await authenticateUploadToken(ctx.store, req, presented, ctx.now())
      : await authenticate(ctx.store, req, ctx.now());
  } catch (e) {
    if (!(e instanceof UnauthenticatedError) && !(e instanceof UploadTokenRefusedError)) throw e;
    let limiter = limiters.get(ctx);
    if (!limiter) {
      limiter = new AuthFailureLimiter(ctx.settings.authFailureLimit, ctx.settings.authFailureWindowMs);
      limiters.set(ctx, limiter);
    }
    const wait = limiter.fail(failureBuckets(req.ip, presentedKey(req)), ctx.now());
    if (wait === null) throw e;
    ctx.metrics.authRateLimited();
    throw new AuthRateLimitedError(wait);
  }
}
