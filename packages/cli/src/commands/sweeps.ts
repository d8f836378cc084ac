import type { Command } from 'commander';
import { PRIORITIES, type Env } from '@liftoff/core/base';
import { connect } from '../connection.js';
import { printJson, table, when } from '../output.js';
import { collect } from '../runConfigFlags.js';
import { common, type Common } from './common.js';

export interface SweepCreateFlags extends Common {
  queue: string;
  code?: string;
  git?: string;
  ref?: string;
  image?: string;
  job?: string;
  dockerfile?: string;
  entryPoint?: string;
  config?: string;
  set: string[];
  env: string[];
  setVar: string[];
  priority?: string;
  parallel: string;
  name?: string;
  project?: string;
}

/** `liftoff sweep ...`: hyperparameter searches whose trials the server pushes (docs/sweeps.md). */
export function sweepCommands(program: Command, env: Env): void {
  const sweep = program
    .command('sweep')
    .description(
      'sweeps: hyperparameter searches in W&B sweep format, their trials pushed by the server (docs/sweeps.md)',
    );

  common(
    sweep
      .command('create <config>')
      .description('start a sweep from a W&B sweep config file (YAML or JSON) on a queue')
      .usage(
        '-q QUEUE CONFIG.yaml (--code DIR | --git URL [--ref REF] | --image IMAGE | -j JOB[:VERSION]) [-E CMD] [--parallel N] [options]',
      ),
  )
    .requiredOption('-q, --queue <name>', 'queue the trials are pushed to')
    .option('--code <dir>', 'upload this directory as the code of every trial')
    .option('--git <url>', 'clone this repository for every trial')
    .option('--ref <ref>', "git branch, tag or commit (default: the remote's HEAD)")
    .option('--image <image>', 'run this container image as is (container queues)')
    .option(
      '-j, --job <name[:version]>',
      'run every trial as this Liftoff job (a version vN or alias; default latest), its run config checked against the job\'s schema; default: the config\'s "job"',
    )
    .option('--dockerfile <path>', "the trials' Dockerfile, relative to their code (container queues)")
    .option('-E, --entry-point <command>', 'program and arguments when the config has no "program" or "command"')
    .option('-c, --config <file>', 'base run config (YAML or JSON) the parameters are set over')
    .option('--set <key=value>', 'base run config value (repeatable; dotted keys nest)', collect, [])
    .option('--env <KEY=VALUE>', 'environment variable of every trial (repeatable; KEY=secret:NAME)', collect, [])
    .option(
      '--set-var <name=value>',
      "value of a {{variable}} of the queue's config template (repeatable)",
      collect,
      [],
    )
    .option('-P, --priority <priority>', `the trials' priority: one of ${Object.keys(PRIORITIES).join(', ')}`)
    .option('--parallel <n>', 'trials in flight at once', '1')
    .option('-n, --name <name>', 'sweep name (default: the config\'s "name")')
    .option('-p, --project <name>', 'project of the trials (default: the config\'s "project")')
    .action(async (file: string, flags: SweepCreateFlags) => {
      const { createSweep } = await import('./sweepCreate.js');
      await createSweep(file, flags, env);
    });

  common(sweep.command('list').description("the entity's sweeps, newest first")).action(async (flags: Common) => {
    const { sweeps } = await (await connect(flags, env)).listSweeps(flags.entity);
    if (flags.json) return printJson(sweeps);
    console.log(
      table(
        ['ID', 'NAME', 'STATE', 'METHOD', 'QUEUE', 'TRIALS', 'BEST', 'CREATED'],
        sweeps.map((s) => [
          s.id,
          s.name,
          s.state,
          s.method,
          s.queue,
          s.trial_count,
          s.best?.metric,
          when(s.created_at),
        ]),
      ),
    );
  });

  common(sweep.command('show <id>').description('a sweep with its trials: parameters, state, metric')).action(
    async (id: string, flags: Common) => {
      const s = await (await connect(flags, env)).getSweep(flags.entity, id);
      if (flags.json) return printJson(s);
      const metric = s.config.metric as { name?: string; goal?: string } | undefined;
      const lines = [
        `sweep ${s.id}  ${s.name}  (${s.method} on ${s.entity}/${s.queue}, parallel ${s.parallel})`,
        `state:  ${s.state}${s.reason ? ` (${s.reason})` : ''}`,
        `metric: ${metric?.name ? `${metric.name}, ${metric.goal ?? 'minimize'}` : 'none'}`,
        `best:   ${s.best ? `trial ${s.best.number}: ${s.best.metric} ${JSON.stringify(s.best.params)}` : '-'}`,
        ...s.notes.map((n) => `note:   ${n}`),
        '',
        table(
          ['TRIAL', 'STATE', 'METRIC', 'RUN', 'PARAMETERS'],
          (s.trials ?? []).map((t) => [
            t.number,
            t.early_terminated ? `${t.state} (early-terminated)` : t.state,
            t.metric,
            t.run_id,
            JSON.stringify(t.params),
          ]),
        ),
      ];
      console.log(lines.join('\n'));
    },
  );

  const actions = {
    pause: 'no new trials; those in flight go on',
    resume: 'push trials again',
    stop: 'end the sweep and cancel the trials in flight',
  } as const;
  for (const [action, what] of Object.entries(actions) as Array<[keyof typeof actions, string]>) {
    common(sweep.command(`${action} <id>`).description(what)).action(async (id: string, flags: Common) => {
      const s = await (await connect(flags, env)).sweepAction(flags.entity, id, action);
      if (flags.json) return printJson(s);
      console.log(`sweep ${s.id}: ${s.state}`);
    });
  }
}
