import { z } from 'zod';
import { CodeSource, ImageSource, assertImageRef, assertSafeGitUrl } from './launchSpec.js';

/**
 * Jobs (docs/jobs.md): named, versioned launch definitions of an entity. A version pins its source (a code archive,
 * a git commit or an image), entry point, build settings and an optional JSON Schema of its run config; `latest` and
 * user aliases point at versions and move.
 */

export const JobName = z
  .string()
  .min(1)
  .max(64)
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'use letters, digits, ".", "_" and "-", starting with a letter or digit');
/** `v0`, `v1`, ... are version names, so an alias is anything else of the job-name shape. */
export const JobAlias = JobName.refine((a) => !/^v\d+$/.test(a), 'v<number> names a version; pick another alias');
export const JobVersionName = z.string().regex(/^v\d{1,9}$/, 'a version name: v0, v1, ...');

/** The most bytes a job's JSON Schema may have (as JSON): a schema is a form of a few fields, not data. */
export const JOB_SCHEMA_MAX_BYTES = 64 * 1024;

const refine = (check: (v: string) => void) => (v: string, ctx: z.RefinementCtx) => {
  try {
    check(v);
  } catch (e) {
    ctx.addIssue({ code: 'custom', message: (e as Error).message });
  }
};

/** A job's git source is pinned to a commit (the CLI resolves a ref with `git ls-remote`; the server never fetches). */
export const JobGitSource = z.object({
  type: z.literal('git'),
  url: z.string().max(2048).superRefine(refine(assertSafeGitUrl)),
  ref: z.string().regex(/^[0-9a-f]{40}([0-9a-f]{24})?$/, 'a full commit id (40 or 64 hex digits)'),
});
export const JobSourceDef = z.discriminatedUnion('type', [CodeSource, JobGitSource, ImageSource]);
export type JobSourceDef = z.infer<typeof JobSourceDef>;

const Dockerfile = z
  .string()
  .min(1)
  .max(1024)
  .refine((p) => !p.startsWith('/') && !p.split('/').includes('..'), {
    message: 'must be a path inside the code, without ".."',
  });

export const CreateJobVersionBody = z
  .object({
    source: JobSourceDef,
    entry_point: z.array(z.string().min(1).max(4096)).max(256).default([]),
    dockerfile: Dockerfile.optional(),
    base_image: z.string().superRefine(refine(assertImageRef)).optional(),
    /** JSON Schema (draft 2020-12 or 07) of the run config; checked as a schema on create. */
    schema: z.record(z.string(), z.unknown()).nullable().default(null),
    /** Aliases to point at this version (besides `latest`, which always moves). */
    aliases: z.array(JobAlias).max(32).default([]),
    description: z.string().max(1024).optional(),
    /** Launches of the version get the environment W&B's agent sets (`wandb_env`; jobs.md). */
    wandb_env: z.boolean().default(false),
  })
  .strict()
  .superRefine((b, ctx) => {
    if (b.source.type !== 'image' && b.entry_point.length === 0)
      ctx.addIssue({ code: 'custom', path: ['entry_point'], message: 'code and git jobs need an entry point' });
    if (b.source.type === 'image' && (b.dockerfile || b.base_image))
      ctx.addIssue({ code: 'custom', path: ['source'], message: 'an image job has nothing to build' });
  });
export type CreateJobVersionBody = z.input<typeof CreateJobVersionBody>;

export const JobVersion = z.object({
  job: z.string(),
  entity: z.string(),
  version: z.string(),
  source: JobSourceDef,
  /** The content hash of a code source's archive. */
  archive_sha256: z.string().nullable(),
  entry_point: z.array(z.string()),
  dockerfile: z.string().nullable(),
  base_image: z.string().nullable(),
  schema: z.record(z.string(), z.unknown()).nullable(),
  description: z.string().nullable(),
  wandb_env: z.boolean(),
  /** sha256 of the definition: an unchanged definition has the same digest and reuses its version. */
  digest: z.string(),
  aliases: z.array(z.string()),
  created_at: z.number(),
  created_by: z.string(),
});
export type JobVersion = z.infer<typeof JobVersion>;

export const CreatedJobVersion = JobVersion.extend({
  /** false: the definition was unchanged ("no changes"), the existing version was reused. */
  created: z.boolean(),
});
export type CreatedJobVersion = z.infer<typeof CreatedJobVersion>;

export const Job = z.object({
  name: z.string(),
  entity: z.string(),
  created_at: z.number(),
  versions: z.number().int(),
  latest: z.string(),
  /** alias → version name, `latest` included. */
  aliases: z.record(z.string(), z.string()),
});
export type Job = z.infer<typeof Job>;
export const JobList = z.object({ jobs: z.array(Job) });
export const JobVersionList = z.object({ versions: z.array(JobVersion) });
export const SetJobAliasBody = z.object({ version: JobVersionName }).strict();
