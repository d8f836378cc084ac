import { z } from 'zod';
import { PushBody, Timestamp } from './api.js';
import { ITEM_STATES } from './states.js';

/** Wire contracts of sweeps (docs/sweeps.md). */

export const SWEEP_STATES = ['running', 'paused', 'finished', 'stopped', 'failed'] as const;
export type SweepState = (typeof SWEEP_STATES)[number];

/** Most trials a sweep keeps in flight at once. */
export const SWEEP_PARALLEL_MAX = 100;

/** The push every trial of a sweep starts from: a PushBody whose spec is checked once a trial completes it. */
export const SweepTrialTemplate = z
  .object({
    spec: z.record(z.string(), z.unknown()),
    priority: PushBody.shape.priority,
    template_variables: PushBody.shape.template_variables,
  })
  .strict();
export type SweepTrialTemplate = z.input<typeof SweepTrialTemplate>;

/**
 * `POST /api/entities/{entity}/sweeps`. `config` is the sweep config (W&B's format; the CLI sends the file parsed by
 * parseSweepConfigYaml, distributions filled in). `trial` is the push every trial starts from, as `liftoff launch`
 * builds it: its source, entry point (used when the config has no `program` or `command`), env, resource args,
 * priority and template values; each trial adds its parameters to the run config.
 */
export const CreateSweepBody = z
  .object({
    queue: z.string().min(1).max(64),
    config: z.record(z.string(), z.unknown()),
    /**
     * A push whose spec may leave out the entry point when the config has a `program` or `command` (the server
     * fills it in per trial and checks the whole push then).
     */
    trial: SweepTrialTemplate,
    parallel: z.number().int().min(1).max(SWEEP_PARALLEL_MAX).default(1),
    name: z.string().min(1).max(128).optional(),
  })
  .strict();
export type CreateSweepBody = z.input<typeof CreateSweepBody>;

export const SweepTrial = z.object({
  number: z.number().int(),
  item_id: z.string(),
  run_id: z.string().nullable(),
  /** The trial's item state (pending … finished, failed, stopped, lost). */
  state: z.enum(ITEM_STATES),
  params: z.record(z.string(), z.unknown()),
  /** The metric's last reported value (W&B's summary), null before the first or without a metric. */
  metric: z.number().nullable(),
  /** Stopped by hyperband (its run ends `stopped`). */
  early_terminated: z.boolean(),
  created_at: Timestamp,
});
export type SweepTrial = z.infer<typeof SweepTrial>;

export const Sweep = z.object({
  id: z.string(),
  entity: z.string(),
  queue: z.string(),
  name: z.string(),
  state: z.enum(SWEEP_STATES),
  method: z.string(),
  config: z.record(z.string(), z.unknown()),
  /** What Liftoff does instead of the config's W&B launch-sweep keys. */
  notes: z.array(z.string()),
  parallel: z.number().int(),
  author: z.string(),
  created_at: Timestamp,
  ended_at: Timestamp.nullable(),
  /** Why it ended or paused: grid exhausted, run_cap reached, target reached, stopped by a user, trials failing. */
  reason: z.string().nullable(),
  trial_count: z.number().int(),
  best: SweepTrial.nullable(),
  /** Every trial, by number (show only). */
  trials: z.array(SweepTrial).optional(),
});
export type Sweep = z.infer<typeof Sweep>;

export const SweepList = z.object({ sweeps: z.array(Sweep) });
export type SweepList = z.infer<typeof SweepList>;
