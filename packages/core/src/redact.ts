/**
 * Redaction of agent configs (and anything shaped like one) before they are stored, answered or logged. An agent
 * sends its config at registration so users can see how it is set up; the same file holds registry passwords,
 * cloud keys and tokens, which must never reach the database, the API or a log.
 *
 * Hand-written on purpose: the libraries that redact (pino's fast-redact, fast-safe-stringify's replacers) take
 * fixed paths, and a config nests user-chosen keys (credentials maps, kaniko overrides) at any depth. This walks the
 * whole value once, with a deny-list of key names plus the config's own known secret sections.
 */

export const REDACTED = '[redacted]';

/** Past this depth a subtree is replaced whole: a hostile body must not exhaust the stack. */
const MAX_DEPTH = 64;

/**
 * Key names that hold secrets, matched on the key lower-cased with `-`, `_`, `.` and spaces removed, so
 * `secret_access_key`, `Secret-Access-Key` and `secretAccessKey` look alike.
 */
const SECRET_KEY =
  /password|passwd|passphrase|secret|token|credential|apikey|accesskey|privatekey|auth|cookie|session|signature|bearer|connectionstring|dsn|key(s|data|file|material)?$|(pwd|pass)$|^(pat|pin)$/;

/** Keys whose whole subtree is an environment (names to values): every value there is redacted. */
const ENV_KEY = /env(s|vars)?$|environmentvariables$/;

/**
 * Paths of the agent config (agentConfig.ts) with names that look secret but hold none: a Kubernetes secret's name
 * and the key inside it, the hosts git may use credentials for, and the lists of variable names (not values) jobs
 * and macros may see. Only at exactly these paths.
 */
const NOT_SECRET_PATHS = new Set([
  'builder.secret-name',
  'builder.secret-key',
  'git.credential-hosts',
  'job-env',
  'macro-env',
]);

/**
 * Sections of the agent config that are secret whole, whatever their keys: `builder.credentials` (registry logins)
 * and `builder.kaniko-config` (a docker config.json with `auths`, or Kaniko overrides with env values).
 */
const SECRET_PATHS = new Set(['builder.credentials', 'builder.kaniko-config']);

const normalize = (key: string): string => key.toLowerCase().replace(/[-_. ]/g, '');

/** Whether a key name looks like it holds a secret (password, token, access key, credentials, auth header...). */
export function isSecretKey(key: string): boolean {
  return SECRET_KEY.test(normalize(key));
}

/** Strings that are secrets whatever their key: a PEM private key, or a URL with a password in it. */
function redactValue(value: string): string {
  if (/PRIVATE KEY-----/.test(value)) return REDACTED;
  // scheme://user:password@host → the password goes (postgres://, https:// registry mirrors...).
  return value.replace(/^([a-z][a-z0-9+.-]*:\/\/[^/@:\s]*):[^/@\s]*@/i, `$1:${REDACTED}@`);
}

/** Every leaf of `value` replaced by the marker (null stays null: it says "not set" and holds nothing). */
function redactAll(value: unknown, depth: number): unknown {
  if (value === null) return null;
  if (depth > MAX_DEPTH) return REDACTED;
  if (Array.isArray(value)) return value.map((v) => redactAll(v, depth + 1));
  if (typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, redactAll(v, depth + 1)]));
  }
  return REDACTED;
}

function walk(value: unknown, path: string, depth: number): unknown {
  if (typeof value === 'string') return redactValue(value);
  if (value === null || typeof value !== 'object') return value;
  if (depth > MAX_DEPTH) return REDACTED;
  if (Array.isArray(value)) return value.map((v) => walk(v, path, depth + 1));
  // Object.fromEntries defines own properties, so a "__proto__" key stays a plain key and pollutes nothing.
  return Object.fromEntries(
    Object.entries(value).map(([k, v]) => {
      const at = path ? `${path}.${k}` : k;
      if (NOT_SECRET_PATHS.has(at)) return [k, v];
      if (SECRET_PATHS.has(at) || isSecretKey(k) || ENV_KEY.test(normalize(k))) return [k, redactAll(v, depth + 1)];
      return [k, walk(v, at, depth + 1)];
    }),
  );
}

/**
 * A copy of an agent config with every secret replaced by {@link REDACTED}: values under secret-looking keys (at any
 * depth, whole subtrees), environment maps, the config's known secret sections, PEM private keys and URL passwords.
 * Pure: the input is not changed.
 */
export function redactConfig<T extends Record<string, unknown>>(config: T): Record<string, unknown> {
  return walk(config, '', 0) as Record<string, unknown>;
}
