/**
 * Item lifecycle: pending → claimed → starting → running → finished | failed | stopped.
 * `cancelling` is entered when a user cancels an item an agent holds; the agent then stops it.
 * A run (one per acknowledged item) shares the post-claim states, so the item's state is the run's status — except
 * `preempted`, which only runs reach: the infrastructure was taken away (pod evicted, spot node reclaimed), so the
 * run ends there and its item goes back to `pending` for another attempt, or ends `failed` once its queue's
 * `preemption_retries` are used up.
 *
 * `lost` is the server's verdict, never an agent's report: the run's agent was silent (no heartbeat, no poll) for
 * longer than the server's `runLostAfterMs`, so nobody knows how the run ended. Its slot is freed, later reports and
 * log uploads about it are refused (RUN_LOST), and its item goes back to `pending` when its queue's `lost_retries`
 * allow another attempt, else ends `lost` as well.
 */
export const ITEM_STATES = [
  'pending',
  'claimed',
  'starting',
  'running',
  'cancelling',
  'finished',
  'failed',
  'stopped',
  'preempted',
  'lost',
] as const;
export type ItemState = (typeof ITEM_STATES)[number];

/** Ends of a run; items end in these too, except `preempted`. */
export const TERMINAL_STATES: readonly ItemState[] = ['finished', 'failed', 'stopped', 'preempted', 'lost'];
export const isTerminal = (s: ItemState): boolean => TERMINAL_STATES.includes(s);

/** States an agent may report for a run it holds. */
export const RUN_REPORT_STATES = ['starting', 'running', 'finished', 'failed', 'stopped', 'preempted'] as const;
export type RunReportState = (typeof RUN_REPORT_STATES)[number];

export const ERROR_STAGES = ['agent', 'build', 'run'] as const;
export type ErrorStage = (typeof ERROR_STAGES)[number];

export const AGENT_STATUSES = ['POLLING', 'RUNNING', 'KILLED'] as const;
export type AgentStatus = (typeof AGENT_STATUSES)[number];

export const RESOURCE_TYPES = [
  'local-process',
  'local-container',
  'kubernetes',
  'sagemaker',
  'vertex',
  'gcp-vertex',
  'slurm',
] as const;
export type ResourceType = (typeof RESOURCE_TYPES)[number];

/**
 * The resource types this release's agent has a runner for (packages/agent/src/runners/index.ts; its test checks
 * the two agree). A queue of another type can be created, to be served by a later agent, but no agent of this
 * release takes its items: the server warns at creation and the UI marks such queues.
 */
export const BUILT_RUNNERS: readonly ResourceType[] = [
  'local-process',
  'local-container',
  'kubernetes',
  'sagemaker',
  'vertex',
  'gcp-vertex',
  'slurm',
];
export const hasBuiltRunner = (resource: string): boolean => (BUILT_RUNNERS as readonly string[]).includes(resource);

/** W&B's CLI names for priorities; 0 is the most urgent, as in W&B Launch. */
export const PRIORITIES = { critical: 0, high: 1, medium: 2, low: 3 } as const;
export type PriorityName = keyof typeof PRIORITIES;
export const DEFAULT_PRIORITY = PRIORITIES.medium;
export const priorityName = (p: number): PriorityName =>
  (Object.entries(PRIORITIES).find(([, v]) => v === p)?.[0] as PriorityName | undefined) ?? 'medium';
