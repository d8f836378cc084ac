import type { Command } from 'commander';
import { PRIORITIES, RESOURCE_TYPES, type Env } from '@liftoff/core/base';
import type { LaunchFlags } from './launchRun.js';
import { collect } from '../runConfigFlags.js';

export function launchCommand(program: Command, env: Env): void {
  program
    .command('launch')
    .description('push a job onto a queue')
    .usage(
      '-q QUEUE (--code DIR | --git URL [--ref REF] | --image IMAGE | -j JOB[:VERSION] | --spec FILE) -E "PROGRAM ARGS" [options] [-- job args]',
    )
    .option('-q, --queue <name>', 'queue to push to', 'default')
    .option('-e, --entity <name>', "entity owning the queue (default: the --spec's entity, else default)")
    .option(
      '-j, --job <name[:version]>',
      'launch a version of a job of the entity (NAME, NAME:v2, NAME:alias; default latest)',
    )
    .option('--code <dir>', "upload this directory as the job's code")
    .option('--git <url>', 'clone this repository (https://, ssh://, file:// or user@host:path)')
    .option('--ref <ref>', "git branch, tag or commit (default: the remote's HEAD)")
    .option('--image <image>', 'run this container image as is, without a build (default: $LIFTOFF_DOCKER)')
    .option('--dockerfile <path>', "the job's Dockerfile, relative to its code (container queues)")
    .option(
      '-E, --entry-point <command>',
      'program and its arguments, e.g. "python train.py" (split like a shell would, never run by one); optional for images',
    )
    .option('-c, --config <file>', 'run config overrides from a YAML or JSON file')
    .option(
      '--set <key=value>',
      'run config override (repeatable; dotted keys nest; values parse as JSON when they can)',
      collect,
      [],
    )
    .option(
      '--sweep <key=v1,v2,...>',
      'push one item per value, each with the run config key set to it (repeatable: every combination; one request)',
      collect,
      [],
    )
    .option(
      '--env <KEY=VALUE>',
      "environment variable for the job (repeatable); KEY=secret:NAME takes the value of the entity's secret NAME",
      collect,
      [],
    )
    .option(
      '--set-var <name=value>',
      "value of a {{variable}} of the queue's config template (repeatable)",
      collect,
      [],
    )
    .option('-P, --priority <priority>', `one of ${Object.keys(PRIORITIES).join(', ')}`)
    .option('--resource <type>', `target resource (${RESOURCE_TYPES.join(', ')}); must match the queue's`)
    .option('--resource-args <json>', 'resource args as JSON, {"<resource>": {...}} or the resource\'s own object')
    .option('-n, --name <name>', 'run name')
    .option('-p, --project <name>', 'project the run belongs to')
    .option('--spec <file>', 'a W&B launch spec (JSON or YAML) to push as it is (docs/jobs.md); -c is the run config')
    .option('--wandb-env', "also set the variables W&B's agent sets (WANDB_CONFIG, WANDB_RUN_ID, ...) in the job")
    .option('--wait', "follow the job's logs and exit with its exit status")
    .option('--json', 'print the pushed item as JSON')
    .option('-u, --url <url>', 'server URL')
    .option('--ca-file <file>', 'PEM file of a CA to trust for an https server (env LIFTOFF_CA_FILE)')
    .argument('[args...]', 'arguments appended to the entry point (after --)')
    .action(async (args: string[], flags: Omit<LaunchFlags, 'entity'> & { entity?: string }) => {
      // The work (YAML, tar, shell splitting, the client) loads only when a launch runs, not for every command.
      const { runLaunch } = await import('./launchRun.js');
      await runLaunch(
        args,
        { ...flags, entity: flags.entity ?? 'default', entityGiven: flags.entity !== undefined },
        env,
      );
    });
}
