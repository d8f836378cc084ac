import { randomInt } from 'node:crypto';
import { z } from 'zod';
import {
  BadRequestError,
  ConfigInvalidError,
  ConflictError,
  CreateSweepBody,
  ForbiddenError,
  Sweep,
  SweepList,
  isTerminal,
  parseSweepConfig,
  sweepTrialCommand,
  type SweepConfig,
  type SweepState,
  type SweepTrial,
} from '@liftoff/core';
import { entityFor, roleIn, type App, type AppContext } from '../context.js';
import { Sweeps, type SweepRow, type TrialRow } from '../store/sweeps.js';
import { proposeRandom } from '../sweeps/distributions.js';
import { proposeGrid } from '../sweeps/grid.js';
import { seededRandom } from '../sweeps/random.js';
import { trialPush } from '../sweeps/trialPush.js';
import { prepareItemAs } from './push.js';

const EntityParams = z.object({ entity: z.string() });
const SweepParams = EntityParams.extend({ id: z.string().min(1).max(64) });

/**
 * Sweeps of an entity (docs/sweeps.md). Members create, pause, resume and stop them (as they push items); agent
 * keys only read. The server's controller (sweeps/controller.ts) pushes the trials.
 */
export function sweepRoutes(app: App, ctx: AppContext): void {
  const sweeps = new Sweeps(ctx.store.db);
  const assertWriter = (req: Parameters<typeof roleIn>[0], entityId: string) => {
    if (roleIn(req, entityId) === 'agent') throw new ForbiddenError('Agent keys cannot change sweeps; use a user key.');
  };

  /** A sweep as the API shows it, with its trials' metric values read in one query. */
  const view = async (row: SweepRow, withTrials: boolean): Promise<Sweep> => {
    const config = JSON.parse(row.config) as SweepConfig;
    const trials = await sweeps.trials(row.id);
    const metric = config.metric;
    const runIds = trials.flatMap((t) => (t.run_id ? [t.run_id] : []));
    const values = metric ? await sweeps.lastValues(runIds, metric.name) : new Map<string, number>();
    const shown = trials.map((t) => toTrial(t, t.run_id ? values.get(t.run_id) : undefined));
    const better = (a: SweepTrial, b: SweepTrial) =>
      metric?.goal === 'maximize'
        ? (a.metric ?? -Infinity) > (b.metric ?? -Infinity)
        : (a.metric ?? Infinity) < (b.metric ?? Infinity);
    const best = shown
      .filter((t) => t.metric !== null)
      .reduce<SweepTrial | null>((b, t) => (!b || better(t, b) ? t : b), null);
    return {
      id: row.id,
      entity: row.entity_name,
      queue: row.queue_name,
      name: row.name,
      state: row.state as SweepState,
      method: config.method,
      config: config as Record<string, unknown>,
      notes: JSON.parse(row.notes) as string[],
      parallel: Number(row.parallel),
      author: row.author,
      created_at: Number(row.created_at),
      ended_at: row.ended_at === null ? null : Number(row.ended_at),
      reason: row.reason,
      trial_count: trials.length,
      best,
      ...(withTrials ? { trials: shown } : {}),
    };
  };

  app.post(
    '/api/entities/:entity/sweeps',
    { schema: { tags: ['sweeps'], params: EntityParams, body: CreateSweepBody, response: { 201: Sweep } } },
    async (req, reply) => {
      const entity = await entityFor(ctx, req, req.params.entity);
      assertWriter(req, entity.id);
      const { config, notes } = parseSweepConfig(req.body.config, 'The sweep config');
      if (config.entity !== undefined && config.entity !== entity.name)
        throw new ConfigInvalidError('The sweep config', [
          `field "entity" (value: ${JSON.stringify(config.entity)}): the sweep is created in entity "${entity.name}"; remove the key or pass -e ${config.entity}`,
        ]);
      const queue = await ctx.store.queues.require(entity, req.body.queue);
      // Trial 0 is checked now as the controller will push it (source, archive, secrets, resource args), so a
      // sweep that cannot push its trials is refused here instead of failing later.
      const sample = config.method === 'grid' ? proposeGrid(config, 0) : proposeRandom(config, seededRandom(0));
      const trial = req.body.trial;
      const name = req.body.name ?? config.name ?? `sweep-${new Date(ctx.now()).toISOString().slice(0, 19)}`;
      if (!sample) throw new BadRequestError('The sweep has no trial to run (an empty grid).');
      const source = trial.spec.source as { type?: unknown } | undefined;
      const entryPoint = trial.spec.entry_point;
      if (
        !sweepTrialCommand(config, sample) &&
        source?.type !== 'image' &&
        !(Array.isArray(entryPoint) && entryPoint.length)
      )
        throw new BadRequestError(
          'The trials have no program: give the sweep config a "program" (or "command"), or the trials an entry point (-E).',
        );
      const first = trialPush(trial, config, { id: 'new', name }, 0, sample);
      await prepareItemAs(ctx, req.principal.keyName, entity, queue, first);
      const row = await sweeps.create(
        {
          entity,
          queueId: queue.id,
          name,
          config,
          trial,
          notes,
          parallel: req.body.parallel,
          seed: randomInt(0, 2 ** 31 - 1),
          author: req.principal.keyName,
          authorKeyId: req.principal.keyId,
        },
        ctx.now(),
      );
      ctx.kickSweeps?.();
      return reply.code(201).send(await view(row, false));
    },
  );

  app.get(
    '/api/entities/:entity/sweeps',
    { schema: { tags: ['sweeps'], params: EntityParams, response: { 200: SweepList } } },
    async (req) => {
      const entity = await entityFor(ctx, req, req.params.entity);
      const rows = await sweeps.list(entity);
      return { sweeps: await Promise.all(rows.map((r) => view(r, false))) };
    },
  );

  app.get(
    '/api/entities/:entity/sweeps/:id',
    { schema: { tags: ['sweeps'], params: SweepParams, response: { 200: Sweep } } },
    async (req) => {
      const entity = await entityFor(ctx, req, req.params.entity);
      return view(await sweeps.require(entity, req.params.id), true);
    },
  );

  for (const action of ['pause', 'resume', 'stop'] as const) {
    app.post(
      `/api/entities/:entity/sweeps/:id/${action}`,
      { schema: { tags: ['sweeps'], params: SweepParams, response: { 200: Sweep } } },
      async (req) => {
        const entity = await entityFor(ctx, req, req.params.entity);
        assertWriter(req, entity.id);
        const row = await sweeps.transition(entity, req.params.id, action, ctx.now());
        // Stopping cancels the trials in flight (W&B's `wandb sweep --cancel`); pausing lets them finish.
        if (action === 'stop') {
          for (const t of await sweeps.trials(row.id)) {
            if (isTerminal(t.state) || t.state === 'cancelling') continue;
            try {
              const { notifyAgent } = await ctx.store.items.cancel(t.item_id, ctx.now());
              if (notifyAgent) ctx.bus.publish(`agent:${notifyAgent}`);
              if (t.run_id) ctx.bus.publish(`run:${t.run_id}`);
            } catch (e) {
              // It ended meanwhile.
              if (!(e instanceof ConflictError)) throw e;
            }
          }
        }
        ctx.kickSweeps?.();
        return view(row, true);
      },
    );
  }
}

function toTrial(t: TrialRow, metric: number | undefined): SweepTrial {
  return {
    number: t.number,
    item_id: t.item_id,
    run_id: t.run_id,
    state: t.state,
    params: t.params,
    metric: metric ?? null,
    early_terminated: t.early_terminated,
    created_at: t.created_at,
  };
}
