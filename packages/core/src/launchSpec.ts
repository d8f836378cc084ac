import { z } from 'zod';
import { SourceRefusedError } from './errors.js';
import { RESOURCE_TYPES } from './states.js';

/**
 * Remotes the agent will clone. `ext::` runs arbitrary commands and plain paths are ambiguous, so only these
 * transports (and scp-like `user@host:path`, which git treats as ssh) are accepted.
 */
const GIT_URL_SCHEMES = ['https://', 'ssh://', 'file://'] as const;
const SCP_LIKE = /^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[^:]/;

/** Throws a SourceRefusedError unless `url` is a git remote the agent may fetch. */
export function assertSafeGitUrl(url: string): void {
  if (url.startsWith('-')) {
    throw new SourceRefusedError(`Refused git URL "${url}": it starts with "-" and would be read as a git option.`);
  }
  if (/[\s\0]/.test(url)) {
    throw new SourceRefusedError(`Refused git URL "${url}": it contains whitespace or control characters.`);
  }
  // A host that starts with "-" would reach ssh as an option (e.g. ssh://-oProxyCommand=...).
  const host = url.replace(/^[a-z]+:\/\//, '').replace(/^[^@/]*@/, '');
  if (host.startsWith('-')) {
    throw new SourceRefusedError(`Refused git URL "${url}": its host starts with "-" and would be read as an option.`);
  }
  if (/^[^@/]*@[^:]*:-/.test(url)) {
    throw new SourceRefusedError(`Refused git URL "${url}": its path starts with "-" and would be read as an option.`);
  }
  if (GIT_URL_SCHEMES.some((s) => url.startsWith(s)) || SCP_LIKE.test(url)) return;
  throw new SourceRefusedError(
    `Refused git URL "${url}": only https://, ssh://, file:// and user@host:path remotes are allowed.`,
  );
}

/** Throws a SourceRefusedError unless `ref` is a plausible branch, tag or commit name. */
export function assertSafeGitRef(ref: string): void {
  if (ref.startsWith('-')) {
    throw new SourceRefusedError(`Refused git ref "${ref}": it starts with "-" and would be read as a git option.`);
  }
  if (ref.length === 0 || ref.length > 255 || /[\s\0~^:?*[\\]|\.\.|@\{/.test(ref)) {
    throw new SourceRefusedError(`Refused git ref "${ref}": it is not a valid branch, tag or commit name.`);
  }
}

const refine = (check: (v: string) => void) => (v: string, ctx: z.RefinementCtx) => {
  try {
    check(v);
  } catch (e) {
    ctx.addIssue({ code: 'custom', message: (e as Error).message });
  }
};

export const CodeSource = z.object({
  type: z.literal('code'),
  /** Id of an archive uploaded to the server (`POST /api/code-archives`). */
  archive_id: z.string().min(1),
});
export const GitSource = z.object({
  type: z.literal('git'),
  url: z.string().superRefine(refine(assertSafeGitUrl)),
  ref: z.string().superRefine(refine(assertSafeGitRef)).optional(),
});
/** `[registry/]repository[:tag][@digest]`, as docker accepts it; never an option. */
const IMAGE_REF =
  /^[a-z0-9]+(?:[._-][a-z0-9]+)*(?::[0-9]+)?(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*(?::[\w][\w.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$/;

export const isImageRef = (ref: string): boolean => ref.length <= 512 && IMAGE_REF.test(ref);

export function assertImageRef(ref: string): void {
  if (!isImageRef(ref)) {
    throw new SourceRefusedError(
      `Refused image "${ref}": expected [registry/]repository[:tag][@sha256:digest] in lower case.`,
    );
  }
}

/**
 * `builder.base_image` of any resource's args becomes the `FROM` line of a generated Dockerfile: anything but an
 * image reference (a newline, a space, an option) would let a job add its own Dockerfile instructions. Checked when
 * the spec is validated (so the server refuses it at push) and again by the agent before it builds.
 */
export function assertBaseImage(ref: unknown, where: string): void {
  if (typeof ref !== 'string' || !isImageRef(ref)) {
    throw new SourceRefusedError(
      `${where} ${JSON.stringify(ref)} is not an image reference: give [registry[:port]/]name[:tag][@sha256:digest], in lower case, without spaces or newlines.`,
    );
  }
}

/** Checks `builder.base_image` in every resource's section of `resource_args`. */
export function assertBuilderArgs(resourceArgs: Record<string, Record<string, unknown>>): void {
  for (const [resource, args] of Object.entries(resourceArgs)) {
    const builder = args.builder;
    if (builder === null || typeof builder !== 'object' || !('base_image' in builder)) continue;
    assertBaseImage((builder as { base_image?: unknown }).base_image, `resource_args.${resource}.builder.base_image`);
  }
}

export const ImageSource = z.object({
  type: z.literal('image'),
  /** A container image run as is, without a build. */
  image: z.string().superRefine(refine(assertImageRef)),
});
export const JobSource = z.discriminatedUnion('type', [CodeSource, GitSource, ImageSource]);
export type JobSource = z.infer<typeof JobSource>;

export const ResourceTypeSchema = z.enum(RESOURCE_TYPES);

const EnvName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be a valid environment variable name');

/** A per-entity secret's name (`liftoff secret set NAME`): what a spec's `secret_env` refers to. */
export const SecretName = z
  .string()
  .regex(
    /^[A-Za-z_][A-Za-z0-9_]{0,127}$/,
    'must be a secret name (letters, digits, _; at most 128; not a digit first)',
  );

/** What a user pushes: where the code comes from, how to start it, and with what configuration. */
export const LaunchSpec = z
  .object({
    source: JobSource,
    /** argv of the program to run; never passed through a shell. */
    /** Optional only for image jobs, which then run the image's own entry point. */
    entry_point: z.array(z.string().min(1)).default([]),
    args: z.array(z.string()).default([]),
    /** Run configuration overrides, handed to the job as JSON in LIFTOFF_RUN_CONFIG. */
    run_config: z.record(z.string(), z.unknown()).default({}),
    env: z.record(EnvName, z.string()).default({}),
    /**
     * Environment variables whose values are secrets of the queue's entity: `{VAR: SECRET_NAME}` (the CLI's
     * `--env VAR=secret:SECRET_NAME`). Only names travel in the spec; the agent holding the run fetches the values.
     */
    secret_env: z.record(EnvName, SecretName).default({}),
    /** Target resource; defaults to the queue's. */
    resource: ResourceTypeSchema.optional(),
    /** `{<resource>: {...}}`; merged over the queue's default resource_args. */
    resource_args: z.record(z.string(), z.record(z.string(), z.unknown())).default({}),
    /** Dockerfile of the job, relative to its code (build context); else `Dockerfile.liftoff` next to the entry point, else generated. */
    dockerfile: z
      .string()
      .min(1)
      .refine((p) => !p.startsWith('/') && !p.split('/').includes('..'), {
        message: 'must be a path inside the code, without ".."',
      })
      .optional(),
    name: z.string().max(128).optional(),
    project: z.string().max(128).optional(),
    /** Set by the server from the pushing key; a pushed value is ignored. */
    author: z.string().optional(),
    /**
     * Opt-in: the agent also sets the variables W&B's agent sets (WANDB_CONFIG, WANDB_RUN_ID, ...; jobEnv.ts), so
     * W&B-instrumented code reads its config unchanged. `liftoff launch --spec` sets it; `--wandb-env` too.
     */
    wandb_env: z.boolean().optional(),
    /**
     * The job version this launch came from (docs/jobs.md): the server takes the source, Dockerfile, base image
     * and (when none is given) the entry point from that version and checks the run config against its schema.
     */
    job: z
      .object({
        name: z.string().min(1).max(64),
        version: z.string().regex(/^v\d{1,9}$/, 'a version name: v0, v1, ...'),
      })
      .strict()
      .optional(),
  })
  .superRefine((spec, ctx) => {
    if (Object.keys(spec.secret_env).length > 100)
      ctx.addIssue({ code: 'custom', path: ['secret_env'], message: 'must have at most 100 entries' });
    for (const name of Object.keys(spec.secret_env))
      if (name in spec.env)
        ctx.addIssue({ code: 'custom', path: ['secret_env', name], message: 'is also set in env; give it one value' });
    if (spec.source.type !== 'image' && spec.entry_point.length === 0) {
      ctx.addIssue({ code: 'custom', path: ['entry_point'], message: 'needs at least the program to run' });
    }
    try {
      assertBuilderArgs(spec.resource_args);
    } catch (e) {
      ctx.addIssue({ code: 'custom', path: ['resource_args'], message: (e as Error).message });
    }
  });
export type LaunchSpec = z.infer<typeof LaunchSpec>;
export type LaunchSpecInput = z.input<typeof LaunchSpec>;
