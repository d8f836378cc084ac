import { parse as parseYaml, YAMLParseError } from 'yaml';
import { z } from 'zod';
import { ConfigInvalidError } from './errors.js';
import { isImageRef } from './launchSpec.js';

/**
 * The launch agent's YAML config, key for key the one W&B Launch documents (so an existing
 * `launch-config.yaml` loads unchanged), plus Liftoff's own optional `name`.
 */
const MaxCount = z
  .number()
  .int()
  .max(100_000)
  .refine((n) => n === -1 || n > 0, { message: 'must be -1 (unlimited) or a positive integer' });

/** ACR repositories: `<name>.azurecr.io/<repo>[/<more>]`, or on a loopback registry (tests). */
const ACR_URI =
  /^(?:https?:\/\/)?(?:[a-z0-9]{5,50}\.azurecr\.io|localhost:\d+|127\.\d+\.\d+\.\d+:\d+)\/[a-z0-9]+(?:[._-][a-z0-9]+)*(?:\/[a-z0-9]+(?:[._-][a-z0-9]+)*)*\/?$/;

const BUILD_CONTEXT_STORE = /^(s3:\/\/|gs:\/\/|https:\/\/[^/]+\.blob\.core\.windows\.net\/[^/]+)/;

export const EnvironmentConfig = z
  .object({
    type: z.enum(['aws', 'gcp', 'azure']),
    region: z.string().min(1).nullable().optional(),
    project: z.string().min(1).optional(),
  })
  .strict()
  .superRefine((env, ctx) => {
    // aws: the agent falls back on AWS_REGION, AWS_DEFAULT_REGION and the profile's region (environments/aws).
    if (env.type === 'gcp' && !env.region) {
      ctx.addIssue({ code: 'custom', path: ['region'], message: 'is required for a gcp environment' });
    }
    if (env.type === 'gcp' && !env.project) {
      ctx.addIssue({ code: 'custom', path: ['project'], message: 'is required for a gcp environment' });
    }
    // azure has no region or project (W&B's has none either): refused rather than silently ignored.
    for (const key of ['region', 'project'] as const) {
      if (env.type === 'azure' && env[key] !== undefined && env[key] !== null) {
        ctx.addIssue({
          code: 'custom',
          path: [key],
          message: 'is not used by an azure environment (credentials and endpoints come from the agent environment)',
        });
      }
    }
  });

export const RegistryConfig = z
  .object({
    type: z.enum(['ecr', 'gcr', 'acr']),
    uri: z.string().min(1).optional(),
    repository: z.string().min(1).optional(),
    'image-name': z.string().min(1).optional(),
  })
  .strict();

export const BuilderConfig = z
  .object({
    type: z.enum(['docker', 'kaniko', 'noop', 'buildah']),
    destination: z
      .string()
      .min(1)
      .refine((d) => !/:[^/]+$/.test(d.replace(/^[^/]*\/\/?/, '')), {
        message: 'must be an image repository without a tag',
      })
      .optional(),
    platform: z.enum(['linux/amd64', 'linux/arm64']).optional(),
    'build-context-store': z
      .string()
      .regex(BUILD_CONTEXT_STORE, 'must start with s3://, gs:// or https://<account>.blob.core.windows.net/<container>')
      .optional(),
    'build-job-name': z.string().min(1).optional(),
    'secret-name': z.string().min(1).optional(),
    'secret-key': z.string().min(1).optional(),
    'kaniko-image': z.string().min(1).optional(),
    /** Liftoff: the image of the buildah builder's pod (buildah, sh, curl and tar; docs/builders.md). */
    'buildah-image': z
      .string()
      .min(1)
      .refine((v) => isImageRef(v), 'must be an image reference ([registry[:port]/]name[:tag][@sha256:digest])')
      .optional(),
    /** Liftoff: default base image of generated Dockerfiles (resource_args.<resource>.builder.base_image wins). */
    'base-image': z
      .string()
      .min(1)
      .refine((v) => isImageRef(v), 'must be an image reference ([registry[:port]/]name[:tag][@sha256:digest])')
      .optional(),
    'kaniko-config': z.record(z.string(), z.unknown()).optional(),
    credentials: z.record(z.string(), z.unknown()).optional(),
  })
  .strict()
  .superRefine((b, ctx) => {
    if (b.type === 'kaniko' && !b['build-context-store']) {
      ctx.addIssue({ code: 'custom', path: ['build-context-store'], message: 'is required for the kaniko builder' });
    }
    if (b.type === 'buildah' && !b['build-context-store']) {
      ctx.addIssue({ code: 'custom', path: ['build-context-store'], message: 'is required for the buildah builder' });
    }
    if (b.type === 'buildah' && !b['buildah-image']) {
      ctx.addIssue({ code: 'custom', path: ['buildah-image'], message: 'is required for the buildah builder' });
    }
  });

const KubeName = z
  .string()
  .max(253)
  .regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, 'must be a Kubernetes name (lower-case letters, digits, "-", ".")');

/**
 * Liftoff: where the agent finds its cluster for `kubernetes` queues. Only the agent config gives cluster access:
 * resource args that name a kubeconfig, context or service-account directory are refused.
 */
export const KubernetesAgentConfig = z
  .object({
    /** A kubeconfig file; default: $KUBECONFIG, else ~/.kube/config, else the in-cluster service account. */
    'config-file': z.string().min(1).optional(),
    /** A context of that kubeconfig; default: its current-context. */
    context: z.string().min(1).optional(),
    /** Namespace of Jobs whose resource args name none; default: the context's, else the in-cluster one, else default. */
    namespace: z.string().min(1).max(63).optional(),
    /** Where the in-cluster token, ca.crt and namespace files live. */
    'service-account-dir': z.string().min(1).optional(),
    /** Namespaces a job may choose besides the agent's own (a queue adds more with `allow: namespace:<name>`). */
    namespaces: z.array(KubeName.max(63)).optional(),
    /** Service accounts a job may name (a queue adds more with `allow: serviceAccount:<name>`). */
    'service-accounts': z.array(KubeName).optional(),
    /**
     * The Liftoff server's URL as pods reach it, for the outputs helper (docs/outputs.md); default: the agent's own
     * server URL. Pods often see the server under another address than the agent (a cluster Service, an ingress).
     */
    'pod-server-url': z
      .string()
      .url()
      .refine((u) => /^https?:\/\//i.test(u), 'must be an http:// or https:// URL')
      .optional(),
  })
  .strict();
export type KubernetesAgentConfig = z.infer<typeof KubernetesAgentConfig>;

/**
 * Liftoff: how the agent fetches git sources. Without this section: no `file://` remotes, and git never uses the
 * agent's credentials (SSH keys and agent, credential helpers, ~/.git-credentials).
 */
export const GitAgentConfig = z
  .object({
    /** Allow `file://` remotes of the agent's own machine (top-level repositories only; never submodules). */
    'allow-file': z.boolean().optional(),
    /** Hosts (as in the remote URL, e.g. github.com or git.example.com:2222) git may use the agent's credentials for. */
    'credential-hosts': z
      .array(z.string().regex(/^[A-Za-z0-9.-]+(:\d+)?$/, 'must be a host name, optionally with :port'))
      .optional(),
  })
  .strict();
export type GitAgentConfig = z.infer<typeof GitAgentConfig>;

/** An environment variable name, as `job-env` and `macro-env` list them. */
const EnvName = z
  .string()
  .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be an environment variable name (letters, digits, _)');
const PosixId = z
  .number()
  .int()
  .min(0)
  .max(2 ** 31 - 2);

/**
 * Liftoff: the user local-process jobs run as. `agent`: the agent's own user (jobs can read its files; only for an
 * agent that cannot switch users). `{user, group}`: one fixed user (names or numeric ids). `dynamic` (optionally
 * with its range): a uid of its own per run, from `first` to `first + count - 1`, used as its gid too.
 */
export const RunAsConfig = z.union([
  z.literal('agent'),
  z.literal('dynamic'),
  z
    .object({ user: z.union([z.string().min(1), PosixId]), group: z.union([z.string().min(1), PosixId]).optional() })
    .strict(),
  z
    .object({
      dynamic: z
        .object({
          first: PosixId.refine((n) => n >= 1000, 'must be at least 1000 (system users live below)'),
          count: z.number().int().min(1),
        })
        .strict()
        .refine((d) => d.first + d.count - 1 <= 2 ** 31 - 2, {
          message: 'first + count - 1 must be at most 2147483646',
          path: ['count'],
        }),
    })
    .strict(),
]);
export type RunAsConfig = z.infer<typeof RunAsConfig>;

/**
 * Liftoff: how slurm queues reach Slurm (docs/slurm.md). `local` runs the Slurm CLI on the agent's host; `ssh` runs
 * it on a login node. `workdir-root` is a directory every compute node sees (a shared filesystem): each run gets
 * `<workdir-root>/<run id>/` with its code, its 0600 env file, its Slurm output and its exit-code file.
 */
export const SlurmAgentConfig = z
  .object({
    transport: z.enum(['local', 'ssh']).default('local'),
    host: z
      .string()
      .min(1)
      .max(253)
      .regex(/^[A-Za-z0-9_.:][A-Za-z0-9._:-]*$/, 'a host name or address (not starting with -)')
      .optional(),
    port: z.number().int().min(1).max(65535).optional(),
    user: z
      .string()
      .min(1)
      .max(64)
      .regex(/^[a-z_][a-z0-9_.-]*$/i, 'a login name')
      .optional(),
    /** The private key ssh logs in with (a path on the agent's host). */
    key: z.string().min(1).optional(),
    /** An OpenSSH known_hosts file holding the login node's host key (default: ssh's own). */
    'known-hosts': z.string().min(1).optional(),
    'workdir-root': z.string().regex(/^\/[^\0\n]*$/, 'an absolute path'),
    /** Between batched squeue calls (default 10 s, the rate SkyPilot and submitit keep slurmctld at). */
    'poll-seconds': z.number().min(0.2).max(600).optional(),
  })
  .strict()
  .superRefine((c, ctx) => {
    if (c.transport === 'ssh' && !c.host) {
      ctx.addIssue({ code: 'custom', path: ['host'], message: 'is required with transport: ssh' });
    }
  });
export type SlurmAgentConfig = z.infer<typeof SlurmAgentConfig>;

export const AgentConfigFile = z
  .object({
    entity: z.string().min(1).nullable().optional(),
    max_jobs: MaxCount.nullable().optional(),
    max_schedulers: MaxCount.nullable().optional(),
    queues: z.array(z.string().min(1)).optional(),
    /** Legacy single-queue key, appended to `queues` as W&B does. */
    queue: z.string().min(1).optional(),
    secure_mode: z.boolean().optional(),
    environment: EnvironmentConfig.nullable().optional(),
    registry: RegistryConfig.nullable().optional(),
    builder: BuilderConfig.nullable().optional(),
    verbosity: z.number().int().min(0).max(2).optional(),
    /** At most 2,000,000 s: node's timers hold 2^31 ms, and a longer one fires at once. */
    stopped_run_timeout: z.number().int().min(0).max(2_000_000).optional(),
    /** Liftoff: the agent's stable name (its identity across restarts). */
    name: z.string().min(1).max(128).optional(),
    /** Liftoff: cluster access for kubernetes queues. */
    kubernetes: KubernetesAgentConfig.optional(),
    /** Liftoff: file:// remotes and the hosts git may use the agent's credentials for. */
    git: GitAgentConfig.optional(),
    /** Liftoff: the user local-process jobs run as (default: dynamic when the agent can switch users). */
    'run-as': RunAsConfig.optional(),
    /** Liftoff: agent environment variables passed on to jobs (beyond PATH, LANG, TZ). */
    'job-env': z.array(EnvName).optional(),
    /** Liftoff: agent environment variables that `${NAME}` macros in resource args may expand. */
    'macro-env': z.array(EnvName).optional(),
    /**
     * Liftoff: how often vertex queues poll a custom job (default 10 s) and how long its log is still read after it
     * ended (default 30 s: Cloud Logging takes entries in late).
     */
    vertex: z
      .object({
        'poll-seconds': z.number().min(0.1).max(3600).optional(),
        'log-tail-seconds': z.number().min(0).max(3600).optional(),
      })
      .strict()
      .optional(),
    /** Liftoff: how slurm queues reach Slurm. */
    slurm: SlurmAgentConfig.optional(),
    /**
     * Liftoff: the size cap of each run's $LIFTOFF_OUTPUT_DIR in MiB (default 1024; docs/outputs.md). A root agent
     * makes the directory a tmpfs of that size, so it lives in memory (and swap) until uploaded.
     */
    'outputs-max-mib': z
      .number()
      .positive()
      .max(1024 * 1024)
      .optional(),
  })
  .strict()
  .superRefine((c, ctx) => {
    if (c.registry?.type === 'ecr' && c.environment?.type !== 'aws') {
      ctx.addIssue({ code: 'custom', path: ['registry', 'type'], message: 'ecr needs an aws environment' });
    }
    if (c.registry?.type === 'gcr' && c.environment?.type !== 'gcp') {
      ctx.addIssue({ code: 'custom', path: ['registry', 'type'], message: 'gcr needs a gcp environment' });
    }
    if (c.registry?.type === 'acr' && c.environment?.type !== 'azure') {
      ctx.addIssue({ code: 'custom', path: ['registry', 'type'], message: 'acr needs an azure environment' });
    }
    if (c.registry?.type === 'ecr' && !c.registry.repository && !c.registry.uri) {
      ctx.addIssue({ code: 'custom', path: ['registry', 'repository'], message: 'is required for an ecr registry' });
    }
    if (c.registry?.type === 'gcr') {
      for (const key of ['repository', 'image-name'] as const) {
        if (!c.registry[key] && !c.registry.uri) {
          ctx.addIssue({ code: 'custom', path: ['registry', key], message: 'is required for a gcr registry' });
        }
      }
    }
    if (c.registry?.type === 'acr') {
      // An azurecr.io host, or a loopback registry (a local test registry, as gcr allows), then a repository path.
      const uri = c.registry.uri ?? c.builder?.destination;
      const path = c.registry.uri ? ['registry', 'uri'] : ['builder', 'destination'];
      if (!uri) {
        ctx.addIssue({ code: 'custom', path: ['registry', 'uri'], message: 'is required for an acr registry' });
      } else if (!ACR_URI.test(uri)) {
        ctx.addIssue({
          code: 'custom',
          path,
          message: 'must be <registry>.azurecr.io/<repository> (lower-case; nested repositories are fine)',
        });
      }
    }
  });
export type AgentConfigFile = z.infer<typeof AgentConfigFile>;

/** Renders a zod error as one line per problem: the field, the value found and what is allowed. */
export function describeIssues(error: z.ZodError, input: unknown): string[] {
  return error.issues.flatMap((issue) => {
    if (issue.code === 'unrecognized_keys') {
      const parent = issue.path.length ? `${formatPath(issue.path)}.` : '';
      return issue.keys.map((k) => `unknown field "${parent}${k}": remove it or check its spelling`);
    }
    const value = valueAt(input, issue.path);
    const shown = value === undefined ? 'missing' : JSON.stringify(value);
    return [`field "${formatPath(issue.path)}" (value: ${shown}): ${issueText(issue, value)}`];
  });
}

function issueText(issue: z.core.$ZodIssue, value: unknown): string {
  switch (issue.code) {
    case 'invalid_value':
      return `must be one of ${issue.values.map((v) => String(v)).join(', ')}`;
    case 'invalid_type':
      if (value === undefined) return `is required (${issue.expected})`;
      return `must be ${article(issue.expected)}`;
    case 'too_small':
      if (issue.origin === 'string') return 'must not be empty';
      if (issue.origin === 'array') return `must have at least ${String(issue.minimum)} entries`;
      return `must be at least ${String(issue.minimum)}`;
    case 'too_big':
      if (issue.origin === 'string') return `must be at most ${String(issue.maximum)} characters`;
      return `must be at most ${String(issue.maximum)}`;
    case 'invalid_format':
      return issue.message;
    default:
      return issue.message;
  }
}

/** zod's type names, in the words of YAML (a list, a mapping). */
const YAML_TYPE_NAMES: Record<string, string> = { int: 'integer', array: 'list', object: 'mapping' };
const article = (expected: string): string => {
  const t = YAML_TYPE_NAMES[expected] ?? expected;
  return /^[aeiou]/.test(t) ? `an ${t}` : `a ${t}`;
};

export function formatPath(path: readonly PropertyKey[]): string {
  return path
    .map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? String(p) : `.${String(p)}`))
    .join('')
    .replace(/\.\[/g, '[');
}

function valueAt(input: unknown, path: readonly PropertyKey[]): unknown {
  let cur: unknown = input;
  for (const p of path) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<PropertyKey, unknown>)[p];
  }
  return cur;
}

/** Parses and validates the YAML text of an agent config; `source` names the file in messages. */
export function parseAgentConfigYaml(text: string, source: string): AgentConfigFile {
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (e) {
    // The parser's first line already ends with " at line L, column C:" (the excerpt follows on the next lines).
    const pos = e instanceof YAMLParseError && e.linePos ? e.linePos[0] : undefined;
    const where = pos ? ` at line ${pos.line}, column ${pos.col}` : '';
    const [first = ''] = (e as Error).message.split('\n');
    const what = first.replace(/ at line \d+, column \d+:?$/, '');
    // Text copied from documentation written with an East Asian input method often has "：" for ":".
    const wide = text.split('\n').findIndex((l) => /^[^#]*\uff1a/.test(l));
    const hint = wide >= 0 ? `; line ${wide + 1} has a full-width colon "\uff1a" where YAML needs ":"` : '';
    throw new ConfigInvalidError(source, [`it is not valid YAML${where}: ${what}${hint}`]);
  }
  if (raw === null || raw === undefined) return {};
  if (typeof raw !== 'object' || Array.isArray(raw)) {
    throw new ConfigInvalidError(source, ['the top level must be a mapping of keys (entity, max_jobs, queues, ...)']);
  }
  const parsed = AgentConfigFile.safeParse(raw);
  if (!parsed.success) throw new ConfigInvalidError(source, describeIssues(parsed.error, raw));
  return parsed.data;
}
