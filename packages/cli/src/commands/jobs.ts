import type { Command } from 'commander';
import { type Env } from '@liftoff/core/base';
import { connect } from '../connection.js';
import { printJson, table, when } from '../output.js';
import { collect } from '../runConfigFlags.js';
import { common, type Common } from './common.js';

export interface JobCreateFlags extends Common {
  code?: string;
  git?: string;
  ref?: string;
  image?: string;
  entryPoint?: string;
  dockerfile?: string;
  baseImage?: string;
  schema?: string;
  alias: string[];
  description?: string;
  wandbEnv?: boolean;
}

/** `liftoff job ...`: named, versioned launch definitions (docs/jobs.md). */
export function jobCommands(program: Command, env: Env): void {
  const job = program.command('job').description('jobs: named, versioned launch definitions (docs/jobs.md)');

  common(
    job
      .command('create <name>')
      .description('create the next version of a job (no new version when nothing changed); latest moves to it')
      .usage('NAME (--code DIR | --git URL [--ref REF] | --image IMAGE) [-E CMD] [options]'),
  )
    .option('--code <dir>', 'upload this directory as the code of the version')
    .option('--git <url>', 'a git repository; the commit of --ref is resolved now (git ls-remote) and pinned')
    .option('--ref <ref>', "branch, tag or commit of --git (default: the remote's HEAD)")
    .option('--image <image>', 'a container image, run as is')
    .option('-E, --entry-point <command>', 'program and its arguments (never run by a shell); optional for images')
    .option('--dockerfile <path>', "the job's Dockerfile, relative to its code")
    .option('--base-image <image>', 'base image of the generated Dockerfile')
    .option('--schema <file>', 'JSON Schema (JSON or YAML) of the run config; launches are checked against it')
    .option('-a, --alias <alias>', 'point this alias at the version too (repeatable)', collect, [])
    .option('-d, --description <text>', 'what the job does')
    .option('--wandb-env', "its launches also get the variables W&B's agent sets (WANDB_CONFIG, WANDB_RUN_ID, ...)")
    .action(async (name: string, flags: JobCreateFlags) => {
      const { createJob } = await import('./jobCreate.js');
      await createJob(name, flags, env);
    });

  common(job.command('list').description("the entity's jobs with their latest version and aliases")).action(
    async (flags: Common) => {
      const { jobs } = await (await connect(flags, env)).listJobs(flags.entity);
      if (flags.json) return printJson(jobs);
      console.log(
        table(
          ['NAME', 'LATEST', 'VERSIONS', 'ALIASES', 'CREATED'],
          jobs.map((j) => [
            j.name,
            j.latest,
            j.versions,
            Object.entries(j.aliases)
              .filter(([a]) => a !== 'latest')
              .map(([a, v]) => `${a}=${v}`)
              .join(' '),
            when(j.created_at),
          ]),
        ),
      );
    },
  );

  common(job.command('show <name[:version]>').description('a version of a job (default: latest)')).action(
    async (ref: string, flags: Common) => {
      const [name, version] = splitJobRef(ref);
      const v = await (await connect(flags, env)).jobVersion(flags.entity, name, version);
      if (flags.json) return printJson(v);
      const src =
        v.source.type === 'code'
          ? `code archive ${v.source.archive_id} (sha256 ${v.archive_sha256 ?? '?'})`
          : v.source.type === 'git'
            ? `git ${v.source.url} at ${v.source.ref}`
            : `image ${v.source.image}`;
      const lines = [
        `job ${v.entity}/${v.job}:${v.version}  (aliases: ${v.aliases.join(', ') || 'none'})`,
        `source:      ${src}`,
        `entry point: ${v.entry_point.map((a) => JSON.stringify(a)).join(' ') || '(the image’s)'}`,
        ...(v.dockerfile ? [`dockerfile:  ${v.dockerfile}`] : []),
        ...(v.base_image ? [`base image:  ${v.base_image}`] : []),
        ...(v.description ? [`description: ${v.description}`] : []),
        ...(v.wandb_env ? ['W&B env:     on (WANDB_CONFIG, WANDB_RUN_ID, ...)'] : []),
        `schema:      ${v.schema ? JSON.stringify(v.schema) : 'none'}`,
        `created:     ${when(v.created_at)} by ${v.created_by}`,
      ];
      console.log(lines.join('\n'));
    },
  );

  common(job.command('versions <name>').description("a job's versions, oldest first")).action(
    async (name: string, flags: Common) => {
      const { versions } = await (await connect(flags, env)).jobVersions(flags.entity, name);
      if (flags.json) return printJson(versions);
      console.log(
        table(
          ['VERSION', 'ALIASES', 'SOURCE', 'CREATED', 'BY'],
          versions.map((v) => [
            v.version,
            v.aliases.join(' '),
            v.source.type === 'git' ? `git@${v.source.ref.slice(0, 12)}` : v.source.type,
            when(v.created_at),
            v.created_by,
          ]),
        ),
      );
    },
  );

  common(job.command('alias <name> <alias> <version>').description('point an alias of a job at a version')).action(
    async (name: string, alias: string, version: string, flags: Common) => {
      const v = await (await connect(flags, env)).setJobAlias(flags.entity, name, alias, version);
      if (flags.json) return printJson(v);
      console.log(`${name}:${alias} → ${v.version}`);
    },
  );

  common(job.command('delete <name>').description('delete a job and all its versions (an admin of the entity)')).action(
    async (name: string, flags: Common) => {
      await (await connect(flags, env)).deleteJob(flags.entity, name);
      if (!flags.json) console.log(`job ${name} deleted`);
    },
  );
}

/** `NAME`, `NAME:v3` or `NAME:alias` → [name, version or alias (undefined: latest)]. */
export function splitJobRef(ref: string): [string, string | undefined] {
  const i = ref.indexOf(':');
  return i < 0 ? [ref, undefined] : [ref.slice(0, i), ref.slice(i + 1) || undefined];
}
