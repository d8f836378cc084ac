import type { Generated } from 'kysely';

/**
 * Table shapes. Timestamps are integer milliseconds and JSON is stored as text so that the same schema maps onto
 * SQLite and PostgreSQL without dialect-specific types.
 */
export interface EntitiesTable {
  id: string;
  name: string;
  created_at: number;
  max_concurrency: number | null;
  kind: Generated<string>;
}
export interface ApiKeysTable {
  id: string;
  name: string;
  key_hash: string;
  role: string;
  entity_id: string | null;
  created_at: number;
  last_used_at: number | null;
  user_id: string | null;
  expires_at: Generated<number | null>;
}
export interface QueuesTable {
  id: string;
  entity_id: string;
  name: string;
  resource: string;
  resource_args: string;
  created_at: number;
  prioritization_mode: Generated<string>;
  aging_ms: number | null;
  max_concurrency: number | null;
  template_variables: Generated<string>;
  start_timeout_seconds: number | null;
  preemption_retries: Generated<number>;
  preemption_backoff_seconds: Generated<number>;
  /** JSON array of SECURITY_ALLOWANCES. */
  allow: Generated<string>;
  /** JSON array of dotted resource-arg paths items may not set (LockedKeys). */
  locked_keys: Generated<string>;
  /** Lowers the server's per-run log cap for this queue's runs (null: the server's). */
  max_log_bytes: number | null;
  lost_retries: Generated<number>;
}
export interface ItemsTable {
  id: string;
  queue_id: string;
  priority: number;
  state: string;
  spec: string;
  created_at: number;
  claimed_by: string | null;
  claimed_at: number | null;
  lease_expires_at: number | null;
  ended_at: number | null;
  run_id: string | null;
  preemptions: Generated<number>;
  not_before: number | null;
  lost_runs: Generated<number>;
  /** JSON of the PushBody as sent (migration 0013); null for older items. */
  pushed: string | null;
}
export interface RunsTable {
  id: string;
  item_id: string;
  queue_id: string;
  agent_id: string;
  status: string;
  exit_code: number | null;
  error_stage: string | null;
  error_message: string | null;
  created_at: number;
  started_at: number | null;
  ended_at: number | null;
  /** The item spec's name, copied at the ack for the search index (migration 0023, runSearchSchema.ts). */
  name: string | null;
  log_size: Generated<number>;
  warning: Generated<string | null>;
  outputs_link: Generated<string | null>;
  /** The agent-facing log offset: bytes accepted, stored or dropped past the cap (log_size counts stored ones). */
  log_received: Generated<number>;
  log_dropped: Generated<number>;
  /** Offset of the log's truncation note; null while under the cap. */
  log_cap_note_at: number | null;
  /** The unfinished output line the metric scan carries to the next chunk (metricLines.ts); null at a line start. */
  metric_carry: string | null;
  /** Metric lines parsed (the default step of the next), points stored (the next seq), lines and values refused. */
  metric_lines: Generated<number>;
  metric_seq: Generated<number>;
  metric_refused: Generated<number>;
}
export interface RunMetricKeysTable {
  run_id: string;
  key: string;
  seen: number;
  stored: number;
  stride: number;
  last_step: number;
  last_value: number;
  last_time: number;
  min_value: number;
  max_value: number;
}
export interface RunMetricPointsTable {
  run_id: string;
  key: string;
  /** The value's index among all the key's values (thinning keeps multiples of the key's stride). */
  idx: number;
  seq: number;
  step: number;
  value: number;
  time: number;
}
export interface AgentsTable {
  id: string;
  name: string;
  entity_id: string;
  hostname: string;
  queues: string;
  version: string;
  config: string;
  max_jobs: number;
  status: string;
  status_reason: string | null;
  started_at: number;
  last_heartbeat_at: number;
  current_jobs: number;
  stop_mode: string | null;
  /** The key that registered the agent (migration 0007); null for agents registered before. */
  key_id: Generated<string | null>;
}
export interface LogChunksTable {
  run_id: string;
  offset: number;
  size: number;
  /** Bytes; rows written before migration 0006 read back as text on SQLite. */
  data: Buffer | string;
  /** `output` (the job's) or `note` (the agent's `[liftoff]` lines). */
  kind: Generated<string>;
  /** Line breaks (0x0A bytes) in `data`; null for chunks written before migration 0020 until a read counts them. */
  newlines: number | null;
}
export interface CodeArchivesTable {
  id: string;
  entity_id: string;
  sha256: string;
  size: number;
  created_at: number;
}

export interface ArchiveBlobsTable {
  sha256: string;
  data: Buffer;
}

export interface UsersTable {
  id: string;
  name: string;
  created_at: number;
}
export interface MembershipsTable {
  entity_id: string;
  user_id: string;
  created_at: number;
  /** 'admin' or 'member' (migration 0007). */
  role: Generated<string>;
}

export interface EntitySecretsTable {
  entity_id: string;
  name: string;
  nonce: string;
  ciphertext: string;
  created_at: number;
  updated_at: number;
  updated_by: string;
}
export interface SecretsKeyCheckTable {
  id: string;
  check_value: string;
  created_at: number;
}

export interface Database {
  users: UsersTable;
  memberships: MembershipsTable;
  archive_blobs: ArchiveBlobsTable;
  entities: EntitiesTable;
  api_keys: ApiKeysTable;
  queues: QueuesTable;
  items: ItemsTable;
  runs: RunsTable;
  agents: AgentsTable;
  log_chunks: LogChunksTable;
  code_archives: CodeArchivesTable;
  entity_secrets: EntitySecretsTable;
  secrets_key_check: SecretsKeyCheckTable;
  run_metric_keys: RunMetricKeysTable;
  run_metric_points: RunMetricPointsTable;
  queue_backlog: QueueBacklogTable;
  queue_backlog_deltas: QueueBacklogDeltasTable;
  run_outputs: RunOutputsTable;
  run_output_chunks: RunOutputChunksTable;
  run_output_commits: RunOutputCommitsTable;
  artifact_chunks: ArtifactChunksTable;
  artifact_garbage: ArtifactGarbageTable;
  run_upload_tokens: RunUploadTokensTable;
}

/** Pending and active (claimed … cancelling) items per queue and priority, kept by triggers (backlogSchema.ts). */
export interface QueueBacklogTable {
  queue_id: string;
  priority: number;
  pending: number;
  active: number;
}
/** PostgreSQL only: changes not yet folded into queue_backlog (backlog.ts); readers add them. */
export interface QueueBacklogDeltasTable {
  id: Generated<number>;
  queue_id: string;
  priority: number;
  pending: number;
  active: number;
}

/** One file of a run's outputs (migration 0014): 'uploading' until the run's commit makes it 'committed'. */
export interface RunOutputsTable {
  id: string;
  run_id: string;
  entity_id: string;
  path: string;
  size: number;
  sha256: string;
  received: number;
  state: string;
  created_at: number;
}
/** The chunks of an output in order, each under its own key in the artifact store (store/outputs.ts chunkKey). */
export interface RunOutputChunksTable {
  output_id: string;
  seq: number;
  size: number;
  key: string;
}
export interface RunOutputCommitsTable {
  run_id: string;
  committed_at: number;
}
/** A run's upload tokens (migration 0018): the sha256 of each, never the token. */
export interface RunUploadTokensTable {
  token_hash: string;
  run_id: string;
  agent_id: string;
  created_at: number;
  expires_at: number;
}
/** The database artifact store's chunks. */
export interface ArtifactChunksTable {
  key: string;
  data: Buffer;
}
/** Artifact-store keys to delete once the transaction that dropped their rows has committed (migration 0021). */
export interface ArtifactGarbageTable {
  key: string;
  queued_at: number;
}
