/**
 * Every error Liftoff raises on purpose carries a stable `code` (part of the public API: the HTTP error body,
 * the CLI's exit line and logs use it) and a message that tells the user what to do next.
 */
export const ERROR_CODES = [
  'BAD_REQUEST',
  'UNAUTHENTICATED',
  'FORBIDDEN',
  'NOT_FOUND',
  'CONFLICT',
  'CONFIG_INVALID',
  'NOT_SUPPORTED',
  'SERVER_UNREACHABLE',
  'SOURCE_REFUSED',
  'SOURCE_FETCH_FAILED',
  'RUNNER_FAILED',
  'MANIFEST_REFUSED',
  'LOCKED_BY_QUEUE',
  'STORAGE',
  'PAYLOAD_TOO_LARGE',
  'INTERNAL',
  'RUN_LOST',
  'SECRET_MISSING',
  'AGENT_KEY_MISMATCH',
  'AUTH_RATE_LIMITED',
  'LAST_ADMIN',
  'SPEC_TOO_LARGE',
  'JSON_TOO_DEEP',
  'TLS_UNTRUSTED',
  'PROTOCOL_MISMATCH',
  'OUTPUT_PATH_REFUSED',
  'OUTPUTS_TOO_LARGE',
  'UPLOAD_TOKEN_REFUSED',
  'INVALID_CURSOR',
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

const HTTP_STATUS: Record<ErrorCode, number> = {
  BAD_REQUEST: 400,
  UNAUTHENTICATED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  CONFLICT: 409,
  CONFIG_INVALID: 400,
  NOT_SUPPORTED: 400,
  SERVER_UNREACHABLE: 503,
  SOURCE_REFUSED: 400,
  SOURCE_FETCH_FAILED: 502,
  RUNNER_FAILED: 500,
  MANIFEST_REFUSED: 400,
  LOCKED_BY_QUEUE: 400,
  STORAGE: 500,
  PAYLOAD_TOO_LARGE: 413,
  INTERNAL: 500,
  RUN_LOST: 410,
  SECRET_MISSING: 400,
  AGENT_KEY_MISMATCH: 403,
  AUTH_RATE_LIMITED: 429,
  LAST_ADMIN: 409,
  SPEC_TOO_LARGE: 413,
  JSON_TOO_DEEP: 400,
  TLS_UNTRUSTED: 503,
  PROTOCOL_MISMATCH: 400,
  OUTPUT_PATH_REFUSED: 400,
  OUTPUTS_TOO_LARGE: 413,
  UPLOAD_TOKEN_REFUSED: 401,
  INVALID_CURSOR: 400,
};

export class LiftoffError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
  get httpStatus(): number {
    return HTTP_STATUS[this.code];
  }
}

export class BadRequestError extends LiftoffError {
  constructor(message: string) {
    super('BAD_REQUEST', message);
  }
}
export class UnauthenticatedError extends LiftoffError {
  constructor(message = 'Missing or unknown API key. Pass it as "Authorization: Bearer <key>".') {
    super('UNAUTHENTICATED', message);
  }
}
export class ForbiddenError extends LiftoffError {
  constructor(message: string) {
    super('FORBIDDEN', message);
  }
}
export class NotFoundError extends LiftoffError {
  constructor(message: string) {
    super('NOT_FOUND', message);
  }
}
export class ConflictError extends LiftoffError {
  constructor(message: string) {
    super('CONFLICT', message);
  }
}
/** W&B Launch refuses a non-default priority on a queue without prioritisation; so does Liftoff, saying how to fix it. */
export class PrioritizationDisabledError extends LiftoffError {
  constructor(queue: string, priority: string) {
    super(
      'BAD_REQUEST',
      `Queue "${queue}" does not have prioritization enabled, so it only takes the default priority "medium" (got "${priority}"). Push without --priority, or enable it with "liftoff queue update ${queue} --prioritization V0".`,
    );
  }
}
/** A pushed `{{variable}}` value that the queue's template does not define or whose schema it breaks. */
export class TemplateVariableError extends LiftoffError {
  constructor(message: string) {
    super('BAD_REQUEST', message);
  }
}
export class ConfigInvalidError extends LiftoffError {
  /** One line per problem, each naming the field, the value and what is allowed. */
  readonly problems: string[];
  constructor(source: string, problems: string[]) {
    super('CONFIG_INVALID', `${source} is invalid:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.problems = problems;
  }
}
/**
 * A queue's config (create body, resource args, template) with problems: all of them, one line each, as
 * `field: what is wrong`. BAD_REQUEST, the code queue creation always answered with; the answer lists them as
 * `problems` too, for clients that show each beside its field (the UI's "New queue" form).
 */
export class QueueConfigInvalidError extends LiftoffError {
  readonly problems: string[];
  constructor(problems: string[]) {
    super(
      'BAD_REQUEST',
      `The queue config has ${problems.length === 1 ? 'a problem' : `${problems.length} problems`}; fix ${problems.length === 1 ? 'it' : 'them all'} and create it again:\n${problems.map((p) => `  - ${p}`).join('\n')}`,
    );
    this.problems = problems;
  }
}
export class NotSupportedError extends LiftoffError {
  constructor(message: string) {
    super('NOT_SUPPORTED', message);
  }
}
export class ServerUnreachableError extends LiftoffError {
  constructor(url: string, cause: unknown) {
    super(
      'SERVER_UNREACHABLE',
      `Cannot reach the Liftoff server at ${url}: ${describeCause(cause)}. Is "liftoff server" running there? Set the URL with --url or LIFTOFF_BASE_URL.`,
      { cause },
    );
  }
}
export class SourceRefusedError extends LiftoffError {
  constructor(message: string) {
    super('SOURCE_REFUSED', message);
  }
}
export class SourceFetchError extends LiftoffError {
  constructor(message: string, cause?: unknown) {
    super('SOURCE_FETCH_FAILED', message, { cause });
  }
}
export class RunnerError extends LiftoffError {
  constructor(message: string, cause?: unknown) {
    super('RUNNER_FAILED', message, { cause });
  }
}

/** A Kubernetes manifest uses something its queue does not allow (host access, privileges) or is malformed. */
export class ManifestRefusedError extends LiftoffError {
  constructor(message: string) {
    super('MANIFEST_REFUSED', message);
  }
}

/** A pushed item sets resource args its queue's owner locked (or that belong to another resource type). */
export class LockedByQueueError extends LiftoffError {
  constructor(message: string) {
    super('LOCKED_BY_QUEUE', message);
  }
}

/** A request body past a size limit of the server. */
export class PayloadTooLargeError extends LiftoffError {
  constructor(message: string) {
    super('PAYLOAD_TOO_LARGE', message);
  }
}

/** The server's own storage (database file, data dir) is missing, damaged or not writable. */
export class StorageError extends LiftoffError {
  constructor(message: string, cause?: unknown) {
    super('STORAGE', message, { cause });
  }
}

/** The agent cannot reach or configure a cluster (kubeconfig, context, service account). */
export class KubeConfigError extends LiftoffError {
  constructor(message: string, cause?: unknown) {
    super('CONFIG_INVALID', message, { cause });
  }
}

/**
 * A report, log upload or heartbeat about a run the server declared `lost` (its agent was silent too long). 410: the
 * run is gone for good from the agent's point of view; retrying cannot help, and its item may already run elsewhere.
 */
export class RunLostError extends LiftoffError {
  constructor(runId: string) {
    super(
      'RUN_LOST',
      `Run "${runId}" was declared lost: its agent was silent for longer than the server's run lost timeout. Stop the run; its item may be running elsewhere. Raise the timeout with "liftoff server --run-lost-after-seconds".`,
    );
  }
}

/** A pushed spec (or its run_config) past the server's size limit. */
export class SpecTooLargeError extends LiftoffError {
  constructor(what: string, bytes: number | null, limit: number) {
    const size = bytes === null ? '' : ` is ${formatBytes(bytes)}, which`;
    super(
      'SPEC_TOO_LARGE',
      `${what}${size} is over the server's limit of ${formatBytes(limit)}. Keep data out of the spec: put files in the code directory (--code) or fetch them in the job, and pass paths or URLs in the run config instead of the data itself.`,
    );
  }
}

/**
 * An agent id is bound to the key that registered it: another key (another agent key, a user's key) may not
 * register that id again, poll, heartbeat, ack, release, log or report for it.
 */
export class AgentKeyMismatchError extends LiftoffError {
  constructor(agentId: string) {
    super(
      'AGENT_KEY_MISMATCH',
      `Agent "${agentId}" is registered with another key; only that key may speak for it. Run the agent with its own key, or give this one another --name.`,
    );
  }
}

/** A JSON body nested deeper than the server takes (a hostile body, or data that belongs in a file). */
export class JsonTooDeepError extends LiftoffError {
  constructor(limit: number) {
    super(
      'JSON_TOO_DEEP',
      `The JSON body nests objects or arrays more than ${limit} levels deep, the server's limit. Flatten the run config (dotted keys such as "--set a.b.c=1" nest only as deep as they are written) or pass deep structures as a file in the code directory.`,
    );
  }
}

/** A launch spec refers to a secret (`--env NAME=secret:SECRET`) its entity does not have. */
export class SecretMissingError extends LiftoffError {
  constructor(entity: string, missing: Array<{ env: string; secret: string }>) {
    const list = missing.map((m) => `"${m.secret}" (for ${m.env})`).join(', ');
    const first = missing[0]?.secret ?? 'NAME';
    super(
      'SECRET_MISSING',
      `Entity "${entity}" has no secret ${list}. Set it with "liftoff secret set ${first} -e ${entity}" (an admin of the entity; the value is read from stdin), or drop the --env.`,
    );
  }
}

/** The server's TLS certificate is not signed by a CA this client trusts. */
export class TlsUntrustedError extends LiftoffError {
  constructor(url: string, reason: string, cause?: unknown) {
    super(
      'TLS_UNTRUSTED',
      `The TLS certificate of the Liftoff server at ${url} is not trusted (${reason}). Pass the CA that signed it with --ca-file FILE, LIFTOFF_CA_FILE or "ca_file" in the credentials file.`,
      { cause },
    );
  }
}

/** Too many failed authentications from one client address or with one key prefix; `retryAfterSeconds` says when. */
export class AuthRateLimitedError extends LiftoffError {
  readonly retryAfterSeconds: number;
  constructor(retryAfterSeconds: number) {
    super(
      'AUTH_RATE_LIMITED',
      `Too many failed authentications; try again in ${retryAfterSeconds} s with a valid key (check LIFTOFF_API_KEY or ~/.config/liftoff/credentials).`,
    );
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

/** A team must keep an admin: its last one can neither be removed nor made a member. */
export class LastAdminError extends LiftoffError {
  constructor(entity: string, user: string) {
    super(
      'LAST_ADMIN',
      `"${user}" is the last admin of "${entity}"; make another member admin first ("liftoff members add ${entity} USER --role admin").`,
    );
  }
}

/** The server's secrets key file is missing, unreadable, malformed, or not the key the database's secrets use. */
export class SecretsKeyError extends LiftoffError {
  constructor(message: string, cause?: unknown) {
    super('STORAGE', message, { cause });
  }
}

/**
 * The agent and the server speak agent-protocol versions the other cannot serve: `upgrade` says which side is behind.
 * Raised by an agent at start, from the versions the server announces at registration.
 */
export class ProtocolVersionError extends LiftoffError {
  readonly upgrade: 'agent' | 'server';
  constructor(upgrade: 'agent' | 'server', agentVersion: number, serverVersion: number, needed: number) {
    super(
      'PROTOCOL_MISMATCH',
      upgrade === 'server'
        ? `This agent speaks agent protocol ${agentVersion} and needs a server that speaks at least ${needed}; the server speaks ${serverVersion}. Upgrade the Liftoff server (or run an older agent).`
        : `This agent speaks agent protocol ${agentVersion}, older than the server's oldest served version ${needed} (the server speaks ${serverVersion}). Upgrade the Liftoff agent (the liftoff package on this host).`,
    );
    this.upgrade = upgrade;
  }
}

/**
 * The agent's `environment: {type: aws}` is unusable: no region, a malformed endpoint variable, credentials STS
 * refuses, a build-context bucket or ECR repository that is missing or not accessible. One line naming what to fix.
 */
export class AwsEnvironmentError extends LiftoffError {
  constructor(message: string, cause?: unknown) {
    super('CONFIG_INVALID', message, { cause });
  }
}

/** The AWS SDK's default credential chain found no credentials at all: says every way there is to provide them. */
export class AwsCredentialsMissingError extends LiftoffError {
  constructor(detail: string, cause?: unknown) {
    super(
      'CONFIG_INVALID',
      `The agent config has an aws environment, but no AWS credentials were found (${detail}). Provide them to the agent process: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN), or AWS_PROFILE naming a profile of ~/.aws/config (aws configure, aws sso login), or run the agent where AWS provides a role (EKS IRSA / Pod Identity, an ECS task role, an EC2 instance profile).`,
      { cause },
    );
  }
}

function formatBytes(n: number): string {
  if (n >= 1024 * 1024) return `${+(n / 1024 / 1024).toFixed(2)} MiB`;
  if (n >= 1024) return `${+(n / 1024).toFixed(1)} KiB`;
  return `${n} bytes`;
}

/** The JSON body of every non-2xx API response. */
export interface ApiErrorBody {
  error: { code: string; message: string };
}

export function errorFromBody(status: number, body: unknown): LiftoffError {
  const err = (body as Partial<ApiErrorBody> | undefined)?.error;
  if (err && typeof err.message === 'string') {
    const code = (ERROR_CODES as readonly string[]).includes(err.code ?? '') ? (err.code as ErrorCode) : 'INTERNAL';
    return new LiftoffError(code, err.message);
  }
  return new LiftoffError('INTERNAL', `The server answered HTTP ${status} without an error message.`);
}

/** "fetch failed: connect ECONNREFUSED 127.0.0.1:1 (ECONNREFUSED)": the messages down the cause chain, and a code. */
export function describeCause(cause: unknown): string {
  const parts: string[] = [];
  let code: string | undefined;
  let cur: unknown = cause;
  for (let depth = 0; cur && depth < 5; depth++) {
    const err = cur as { message?: string; code?: string; cause?: unknown; errors?: unknown[] };
    if (err.message && !parts.includes(err.message)) parts.push(err.message);
    code ??= err.code;
    cur = err.cause ?? err.errors?.[0];
  }
  if (!parts.length) return String(cause);
  return code && !parts.join(': ').includes(code) ? `${parts.join(': ')} (${code})` : parts.join(': ');
}

/**
 * The agent's `environment: {type: gcp}` is unusable: a token Google refuses, a metadata server or endpoint that does
 * not answer, a build-context bucket or registry target that is missing or not accessible. One line naming the fix.
 */
export class GcpEnvironmentError extends LiftoffError {
  constructor(message: string, cause?: unknown) {
    super('CONFIG_INVALID', message, { cause });
  }
}

/** Application Default Credentials found nothing at all: says every way there is to provide them. */
export class GcpCredentialsMissingError extends LiftoffError {
  constructor(detail: string, cause?: unknown) {
    super(
      'CONFIG_INVALID',
      `The agent config has a gcp environment, but no Google Cloud credentials were found (${detail}). Provide them to the agent process: GOOGLE_APPLICATION_CREDENTIALS naming a service-account key or workload identity federation config file, or run "gcloud auth application-default login" as the agent's user, or run the agent on GCE/GKE with a service account attached (the metadata server).`,
      { cause },
    );
  }
}

/**
 * The agent's `environment: {type: azure}` is unusable: a token Entra refuses, an identity endpoint that does not
 * answer, a build-context container or ACR registry that is missing or not accessible. One line naming the fix.
 */
export class AzureEnvironmentError extends LiftoffError {
  constructor(message: string, cause?: unknown) {
    super('CONFIG_INVALID', message, { cause });
  }
}

/** No source of the agent's Azure credential chain had credentials: says every way there is to provide them. */
export class AzureCredentialsMissingError extends LiftoffError {
  constructor(detail: string, cause?: unknown) {
    super(
      'CONFIG_INVALID',
      `The agent config has an azure environment, but no Azure credentials were found (${detail}). Provide them to the agent process: a service principal (AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET or AZURE_CLIENT_CERTIFICATE_PATH), or workload identity on AKS (AZURE_FEDERATED_TOKEN_FILE with AZURE_TENANT_ID and AZURE_CLIENT_ID), or run the agent where Azure attaches a managed identity (a VM, App Service, Container Apps).`,
      { cause },
    );
  }
}

/**
 * The agent config of an in-cluster builder (kaniko, buildah) cannot work: a missing store or registry, a
 * build-job-name that is no Kubernetes name, a kaniko-config fragment that fights what Liftoff sets. The agent stops
 * at start-up with the message, which names the key to fix.
 */
export class InClusterBuilderConfigError extends LiftoffError {
  constructor(message: string) {
    super('CONFIG_INVALID', message);
  }
}

/**
 * The Slurm CLI failed or answered something the runner cannot use (sinfo unreachable, sbatch refused the job, ssh
 * could not log in). The message names the command, its output and what to check.
 */
export class SlurmError extends LiftoffError {
  constructor(message: string, cause?: unknown) {
    super('RUNNER_FAILED', message, { cause });
  }
}

/** `resource_args.slurm` holds an option Liftoff does not pass to sbatch (unknown, or one Liftoff sets itself). */
export class SlurmOptionRefusedError extends LiftoffError {
  constructor(message: string) {
    super('BAD_REQUEST', message);
  }
}

/**
 * A run output's path the server does not store: absolute, with "..", "." or empty segments, control characters,
 * a backslash, or past the length or depth bounds. The job chose the name, so it is hostile input.
 */
export class OutputPathRefusedError extends LiftoffError {
  constructor(path: string, why: string) {
    super(
      'OUTPUT_PATH_REFUSED',
      `Output path ${JSON.stringify(path.slice(0, 200))} is refused: ${why}. Write outputs under $LIFTOFF_OUTPUT_DIR with plain relative names (letters, digits, "/" between folders).`,
    );
  }
}

/** A run's outputs (or its entity's, over all runs) past the server's size or count limit. */
export class OutputsTooLargeError extends LiftoffError {
  constructor(what: string, size: number, limit: number, unit: 'bytes' | 'files' = 'bytes') {
    const fmt = (n: number) => (unit === 'files' ? `${n} files` : formatBytes(n));
    super(
      'OUTPUTS_TOO_LARGE',
      `${what} would be ${fmt(size)}, over the server's limit of ${fmt(limit)}. Save fewer or smaller files to $LIFTOFF_OUTPUT_DIR (keep the last checkpoints, not every one), or ask the server's operator to raise the limit (liftoff server --max-run-outputs-mib / --max-entity-outputs-gib).`,
    );
  }
}

/** An outputs upload that does not fit the server's record: a wrong offset, a finished or committed upload. */
export class OutputUploadConflictError extends LiftoffError {
  constructor(message: string) {
    super('CONFLICT', message);
  }
}

/**
 * A run's upload token (docs/outputs.md, Kubernetes) presented where it does not count: unknown, expired, revoked
 * (the run ended), or sent to anything but its run's three upload calls. 401, like an unknown key.
 */
export class UploadTokenRefusedError extends LiftoffError {
  constructor(why: string) {
    super(
      'UPLOAD_TOKEN_REFUSED',
      `The upload token is refused: ${why}. An upload token only uploads its own run's outputs while the run is live (the liftoff_outputs.py helper); use an API key for anything else.`,
    );
  }
}

/** The server's artifact store setting cannot work (a data-dir store with replicas, a bad s3:// URI, no credentials). */
export class ArtifactStoreConfigError extends LiftoffError {
  constructor(message: string) {
    super('CONFIG_INVALID', message);
  }
}

/** `liftoff runs outputs --download` could not write a file safely, or what arrived is not what the server listed. */
export class OutputDownloadError extends LiftoffError {
  constructor(message: string) {
    super('STORAGE', message);
  }
}

/**
 * A runs list query (`columns`, `sort`, `cursor`, `state`) the server cannot run: an unknown column, a config key
 * outside the allowed syntax, too many columns, or a cursor from another sort. The message names the part and the fix.
 */
export class RunQueryError extends LiftoffError {
  constructor(message: string) {
    super('BAD_REQUEST', message);
  }
}

/**
 * A list's `cursor` this server did not give, or gave for another list, order or sort (a hand-made or stale one):
 * refused rather than resuming at a wrong place. Clients start again from the first page (no cursor).
 */
export class InvalidCursorError extends LiftoffError {
  constructor(why: string) {
    super(
      'INVALID_CURSOR',
      `The cursor ${why}. Pass the next_cursor (or prev_cursor) of the previous page of the same list and order, or leave cursor out to start from the first page.`,
    );
  }
}

/** A W&B launch spec (`liftoff launch --spec`) holds a key Liftoff does not support: refused by name, never dropped. */
export class WandbSpecKeyRefusedError extends LiftoffError {
  constructor(key: string, why: string) {
    super('NOT_SUPPORTED', `W&B launch spec key "${key}" is not supported by Liftoff: ${why} Remove it from the spec.`);
  }
}

/** A W&B launch spec is malformed (a key of the wrong type, no source, two sources). */
export class WandbSpecInvalidError extends LiftoffError {
  constructor(message: string) {
    super('BAD_REQUEST', `W&B launch spec: ${message}`);
  }
}

/** `liftoff launch -c FILE` got what looks like a W&B launch spec, which is `--spec` in Liftoff (`-c` is the run config). */
export class RunConfigLooksLikeSpecError extends LiftoffError {
  constructor(file: string, key: string) {
    super(
      'BAD_REQUEST',
      `--config ${file} looks like a W&B launch spec (it has "${key}"); in Liftoff -c is the run config. Pass the spec with --spec ${file}, or, if this really is a run config, give the key with --set.`,
    );
  }
}

/** A job's JSON Schema for its run config is not a valid JSON Schema, or is too large. */
export class JobSchemaInvalidError extends LiftoffError {
  constructor(message: string) {
    super('BAD_REQUEST', `The job's run-config schema is not usable: ${message}`);
  }
}

/** A run config does not satisfy its job's schema; the message has one line per problem, naming the key. */
export class RunConfigSchemaError extends LiftoffError {
  readonly problems: string[];
  constructor(job: string, problems: string[]) {
    super(
      'BAD_REQUEST',
      `The run config does not match the schema of job ${job}; nothing was queued:\n${problems.map((p) => `  ${p}`).join('\n')}`,
    );
    this.problems = problems;
  }
}

/** A job version, alias or job of the entity does not exist. */
export class JobNotFoundError extends LiftoffError {
  constructor(message: string) {
    super('NOT_FOUND', `${message} List them with "liftoff job list" / "liftoff job versions NAME".`);
  }
}
