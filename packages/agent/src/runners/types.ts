import type { FetchedOutputs } from './slurm/remoteOutputs.js';
import type Dockerode from 'dockerode';
import type { Logger } from 'pino';
import type {
  Env,
  KubernetesAgentConfig,
  LaunchSpec,
  ResourceType,
  RunAsConfig,
  SecurityAllowance,
  SlurmAgentConfig,
} from '@liftoff/core';
import type { RegistryCredentials } from '../docker/credentials.js';
import type { OutputDirSpec } from '../outputs/outputDir.js';
import type { AwsClientSettings, AzureClientSettings, GcpClientSettings } from '../environments/types.js';

/** Everything a runner needs to start one job; runners read nothing else (no process.env, no globals). */
export interface JobContext {
  runId: string;
  itemId: string;
  queue: string;
  entity: string;
  spec: LaunchSpec;
  /** The job's source, already fetched; the process starts here. */
  workDir: string;
  /**
   * The run's agent-owned directory (0700, outside the work dir): records the agent acts on after a restart (pid
   * files) live here, where the job cannot write.
   */
  stateDir: string;
  /**
   * Local processes: the user and group the job runs as; absent with `run-as: agent`. `dynamic`: a uid of this run
   * alone (jobUsers.ts), so that every process holding it is the run's.
   */
  user?: { uid: number; gid: number; dynamic?: boolean };
  /** The job's whole environment (jobEnv.ts, from an allow-list); runners add nothing of the agent's. */
  env: Record<string, string>;
  /** Container runners: the image to run (built, or the job's own). */
  image?: string;
  /**
   * Container runners: the noop builder's code, only on the agent's machine (no pod can see it); the
   * local-container runner puts a per-run copy of `workDir` here and starts the job in it.
   */
  mountCodeAt?: string;
  /** Container runners: images the docker builder generated hold the code here; the job starts in a per-run copy. */
  workCopyAt?: string;
  /**
   * local-process and local-container: the run's output dir on the agent's host, to create (and cap) as the job's
   * user before it starts (outputs/outputDir.ts); the agent collects it after the run.
   */
  outputDir?: OutputDirSpec;
  /** Receives the job's stdout and stderr, interleaved, as UTF-8 text. */
  onOutput: (text: string) => void;
  /** Writes a `[liftoff]` status line to the run's log. */
  onNote: (line: string) => void;
  /** Runners that report phases (`reportsRunning`): the job's workload is now running. */
  onRunning: () => void;
  /**
   * Runners that report phases: the workload left its node and waits to run again (Slurm requeued the same job);
   * the run goes back to `starting` as one run, never a new item.
   */
  onStarting?: () => void;
  /** The latest non-fatal problem (unschedulable, image pull back-off, ...), or null once it cleared. */
  onWarning: (warning: string | null) => void;
  /** Runners whose job runs elsewhere: where it writes its outputs (an s3:// or gs:// URI), shown on the run. */
  onOutputsLink?: (uri: string) => void;
  /** Guardrail exceptions the job's queue allows. */
  allow: readonly SecurityAllowance[];
  logger: Logger;
}

/** What a runner gets to re-adopt a run after an agent restart: the job's identity and its callbacks. */
export type AdoptContext = Pick<
  JobContext,
  | 'runId'
  | 'itemId'
  | 'queue'
  | 'entity'
  | 'spec'
  | 'workDir'
  | 'stateDir'
  | 'onOutput'
  | 'onNote'
  | 'onRunning'
  | 'onStarting'
  | 'onWarning'
  | 'onOutputsLink'
>;

export type RunOutcome =
  | { state: 'finished'; exitCode: 0 }
  | { state: 'failed'; exitCode: number | null; message: string }
  | { state: 'stopped'; exitCode: number | null }
  /** The infrastructure took the job away (eviction, preemption): the server requeues the item. */
  | { state: 'preempted'; exitCode: number | null; message: string };

/** A started job. */
export interface RunHandle {
  /** Resolves once the job has ended and all its output was delivered. */
  wait(): Promise<RunOutcome>;
  /** Asks the job to stop, forcibly after `graceMs`; resolves once it is gone. `wait()` then reports `stopped`. */
  cancel(graceMs: number): Promise<void>;
}

/**
 * A runner turns a job into something running on its target (a process, a container, a Kubernetes Job, ...).
 * `reconcile` is called at start-up for runs this agent identity held before a restart.
 */
export interface Runner {
  readonly type: ResourceType;
  /**
   * True when the runner calls `onRunning` once the workload really runs (a pod can wait long for a node); the run
   * stays `starting` until then. Otherwise the agent reports `running` as soon as `start` returns.
   */
  readonly reportsRunning?: boolean;
  start(job: JobContext): Promise<RunHandle>;
  /**
   * Deals with a run left over from a previous incarnation of this agent. Returns a handle when the run could be
   * re-adopted, or an outcome to report when it could not. A re-adopted run replays its output from the start;
   * the agent drops what the server already has.
   */
  reconcile(run: AdoptContext): Promise<RunHandle | RunOutcome>;
  /** At agent start: refuses a configuration this runner cannot work with (e.g. no cluster to reach). */
  check?(): Promise<void>;
  /** After reconciling: removes what this agent left behind for runs that are no longer active. */
  sweep?(activeRunIds: ReadonlySet<string>): Promise<void>;
  /** Releases watches and connections when the agent stops. */
  close?(): Promise<void>;
  /**
   * For runners whose jobs write LIFTOFF_OUTPUT_DIR where the agent cannot read it (Slurm over ssh): the ended run's
   * output files fetched into `into`, a private staging dir, at most `capBytes` (slurm/remoteOutputs.ts); undefined
   * when the run has none there. The agent then uploads them like any run's (outputs/index.ts).
   */
  fetchOutputs?(runId: string, into: string, capBytes: number): Promise<FetchedOutputs | undefined>;
}

/** Services injected into runners; runners read nothing from the process themselves. */
export interface RunnerDeps {
  logger: Logger;
  /**
   * The agent's own environment minus its API key, for the agent's own helpers (a kubeconfig's exec plugin); never
   * a job's: job environments come from jobEnv.ts.
   */
  processEnv: Env;
  agentId: string;
  docker: Dockerode;
  credentials: RegistryCredentials;
  /** The agent config's `kubernetes` section. */
  kubernetes: KubernetesAgentConfig;
  /** The agent config's `secure_mode` (see docs/wandb-differences.md). */
  secureMode?: boolean;
  /** The agent's home directory (for ~/.kube/config). */
  homeDir: string;
  /** Present when the agent config has `environment: {type: aws}`: how AWS clients are built. */
  aws?: AwsClientSettings;
  /** Present when the agent config has `environment: {type: gcp}`: project, region and the one auth client. */
  gcp?: GcpClientSettings;
  /** Present when the agent config has `environment: {type: azure}`: the one credential chain and endpoints. */
  azure?: AzureClientSettings;
  /** The agent config's `vertex` section: poll interval and log tail of vertex queues, in ms. */
  vertex?: { pollMs?: number; tailMs?: number };
  /** The agent config's `slurm` section (transport and shared workdir root of slurm queues). */
  slurm?: SlurmAgentConfig;
  /** The agent config's `run-as`: slurm jobs of a root agent are submitted as its fixed user. */
  runAs?: RunAsConfig;
  /**
   * Jobs that upload their own outputs (kubernetes; docs/outputs.md): a fresh upload token of a run held by this
   * agent, the server URL its pods use, and the cap of the output dir (`outputs-max-mib`).
   */
  outputs?: { uploadToken(runId: string): Promise<string>; podServerUrl: string; capBytes: number };
}
