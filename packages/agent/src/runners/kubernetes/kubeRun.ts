import type { KubeConfig, KubernetesObject, V1Job, V1Pod } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { RunHandle, RunOutcome } from '../types.js';
import type { KubeApi, OwnerRef } from './api.js';
import { PodLogs } from './podLogs.js';
import { readCustom, readJob, readPod, type PodSignal } from './status.js';
import type { SharedWatch } from './watchHub.js';

export interface RunCallbacks {
  onOutput: (text: string) => void;
  onNote: (line: string) => void;
  onRunning: () => void;
  onWarning: (warning: string | null) => void;
}

/** Pods still present this long after a cancel's grace period mean the cluster is not cleaning up. */
const CANCEL_SLACK_MS = 120_000;
/** How long a finished run waits for its pods' last log lines. */
const LOG_DRAIN_MS = 15_000;
/** How long a failed Job's verdict waits for the pod event that carries its container's exit code (decideJobFailure). */
const FAILURE_WAIT_MS = 2_000;

/**
 * One run's Job (or custom resource) as its watches see it: phases and warnings from its pods, the outcome from
 * the Job's conditions, logs streamed throughout, and a cancel that returns only once the pods are gone.
 */
export class KubeRun implements RunHandle {
  private readonly pods = new Map<string, V1Pod>();
  private readonly logs: PodLogs;
  private readonly unsubscribe: Array<() => void> = [];
  private running = false;
  private warning: string | null = null;
  private disruption: string | undefined;
  private failure: PodSignal['failure'];
  private ownerSeen = false;
  private ownerGone = false;
  private cancelling = false;
  private decided = false;
  private cancelDone: (() => void) | undefined;
  private resolve!: (o: RunOutcome) => void;
  private readonly outcome = new Promise<RunOutcome>((r) => {
    this.resolve = r;
  });

  constructor(
    private readonly ref: OwnerRef,
    private readonly api: KubeApi,
    kc: KubeConfig,
    private readonly cb: RunCallbacks,
    private readonly logger: Logger,
    watches: { pods: SharedWatch<V1Pod>; owner: SharedWatch<KubernetesObject> },
    /** The run's own Secrets (image pull, upload token): deleted when it ends. */
    private readonly secrets: readonly string[],
  ) {
    this.logs = new PodLogs(kc, ref.namespace, cb.onOutput, logger);
    this.unsubscribe.push(watches.pods.subscribe(ref.runId, (p, deleted) => this.onPod(p, deleted)));
    this.unsubscribe.push(watches.owner.subscribe(ref.runId, (o, deleted) => this.onOwner(o, deleted)));
  }

  wait(): Promise<RunOutcome> {
    return this.outcome;
  }

  async cancel(graceMs: number): Promise<void> {
    if (this.decided || this.cancelling) return void (await this.outcome);
    this.cancelling = true;
    const gone = new Promise<void>((r) => {
      this.cancelDone = r;
    });
    // Foreground: the Job is removed only after its pods; the pods are also deleted directly so that the agent's
    // grace period applies instead of the pod's own (30 s by default).
    const graceSeconds = Math.ceil(graceMs / 1000);
    try {
      await this.api.deleteOwner(this.ref, 'Foreground');
      await Promise.all([...this.pods.keys()].map((p) => this.api.deletePod(this.ref.namespace, p, graceSeconds)));
    } catch (err) {
      // The deadline below turns a cluster that cannot be reached into an honest failure.
      this.logger.warn({ err, run: this.ref.runId }, 'deleting the Job failed');
      this.cb.onNote(`cancel: deleting ${this.describe()} failed: ${(err as Error).message}`);
    }
    this.checkCancelDone();
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      gone.then(() => false),
      new Promise<boolean>((r) => {
        timer = setTimeout(() => r(true), graceMs + CANCEL_SLACK_MS);
      }),
    ]);
    clearTimeout(timer);
    if (timedOut) {
      const left = [...this.pods.keys()].join(', ');
      await this.end({
        state: 'failed',
        exitCode: null,
        message: `Cancelled, but ${this.describe()} still has pods (${left || 'the Job itself'}) ${Math.round((graceMs + CANCEL_SLACK_MS) / 1000)} s later; delete them with kubectl -n ${this.ref.namespace} delete pod ${left}.`,
      });
    } else {
      await this.end({ state: 'stopped', exitCode: null });
    }
  }

  private describe(): string {
    return `${this.ref.kind === 'job' ? 'Job' : this.ref.resourceKind} ${this.ref.namespace}/${this.ref.name}`;
  }

  private onPod(pod: V1Pod, deleted: boolean): void {
    const name = pod.metadata?.name ?? '';
    if (deleted) this.pods.delete(name);
    else this.pods.set(name, pod);
    this.logs.update(pod, deleted);
    const signal = readPod(pod, deleted);
    if (signal.disruption) this.disruption ??= signal.disruption;
    if (signal.failure) this.failure = signal.failure;
    if (!deleted && !this.decided && !this.cancelling) {
      if (signal.running && !this.running) {
        this.running = true;
        this.cb.onRunning();
      }
      if (signal.warning) this.setWarning(signal.warning);
      else if (signal.running) this.setWarning(null);
    }
    this.checkCancelDone();
  }

  private onOwner(obj: KubernetesObject, deleted: boolean): void {
    if (obj.metadata?.name !== this.ref.name) return;
    this.ownerSeen = true;
    if (deleted) {
      this.ownerGone = true;
      this.checkCancelDone();
      if (!this.cancelling && !this.decided) {
        void this.decide({
          state: 'failed',
          exitCode: null,
          message: `${this.describe()} was deleted outside Liftoff before it finished.`,
        });
      }
      return;
    }
    if (this.ref.kind === 'job') {
      const end = readJob(obj as V1Job);
      if (end?.state === 'finished') void this.decide({ state: 'finished', exitCode: 0 });
      else if (end) void this.decideJobFailure(end);
      return;
    }
    const phase = readCustom(obj);
    if (phase?.phase === 'running' && !this.running) {
      this.running = true;
      this.cb.onRunning();
    } else if (phase?.phase === 'finished') void this.decide({ state: 'finished', exitCode: 0 });
    else if (phase?.phase === 'failed')
      void this.decide({
        state: 'failed',
        exitCode: this.failure?.exitCode ?? null,
        message: `${this.describe()} failed: ${phase.detail}`,
      });
  }

  /**
   * A failed Job's verdict, with its container's exit code. The Job and its pods come on separate watches, in no set
   * order: the Job's Failed condition can arrive before the pod event that says how its container ended. Waited for
   * a little (FAILURE_WAIT_MS), then decided with what is known.
   */
  private async decideJobFailure(end: { reason: string; message?: string | undefined }): Promise<void> {
    for (let waited = 0; !this.failure && waited < FAILURE_WAIT_MS; waited += 50)
      await new Promise((r) => setTimeout(r, 50));
    const f = this.failure;
    const container = f
      ? f.reason === 'OOMKilled'
        ? `container ${f.container} was OOMKilled (exit code ${f.exitCode}); `
        : `container ${f.container} exited with code ${f.exitCode} (${f.reason}${f.message ? `: ${f.message}` : ''}); `
      : '';
    await this.decide({
      state: 'failed',
      exitCode: f?.exitCode ?? null,
      message: `${container}Job failed: ${end.reason}${end.message ? `: ${end.message}` : ''}`,
    });
  }

  /** The first terminal verdict wins; a failure after a disruption is the infrastructure's doing: preempted. */
  private async decide(outcome: RunOutcome): Promise<void> {
    if (this.decided || this.cancelling) return;
    this.decided = true;
    if (outcome.state === 'failed' && this.disruption) {
      outcome = { state: 'preempted', exitCode: outcome.exitCode, message: this.disruption };
      // The next attempt gets a Job of its own; this one would only linger until its TTL.
      await this.api
        .deleteOwner(this.ref, 'Background')
        .catch((err: unknown) => this.logger.warn({ err, run: this.ref.runId }, 'could not delete a preempted Job'));
    }
    if (this.warning) this.setWarning(null);
    await this.end(outcome);
  }

  private async end(outcome: RunOutcome): Promise<void> {
    await this.logs.drain(LOG_DRAIN_MS);
    this.logs.stop();
    for (const u of this.unsubscribe) u();
    // A run that failed before its workload ever ran (a container that could not be created, a Job the controller
    // gave up on) keeps nothing worth a `kubectl describe` that its error message lacks: its pods, which hold the
    // run's environment, go at once rather than after ttlSecondsAfterFinished. Logs were drained above.
    if (outcome.state === 'failed' && !this.running && !this.cancelling) {
      await this.api
        .deleteOwner(this.ref, 'Background')
        .catch((err: unknown) => this.logger.warn({ err, run: this.ref.runId }, 'could not delete a failed start'));
    }
    for (const s of this.secrets) await this.api.deleteSecret(this.ref.namespace, s);
    this.resolve(outcome);
  }

  private setWarning(w: string | null): void {
    if (w === this.warning) return;
    this.warning = w;
    if (w) this.cb.onNote(`warning: ${w}`);
    this.cb.onWarning(w);
  }

  private checkCancelDone(): void {
    if (!this.cancelling || !this.cancelDone) return;
    // Objects never seen (a cancel right after create) count as gone only once the API says so.
    if ((this.ownerGone || !this.ownerSeen) && this.pods.size === 0) {
      if (!this.ownerSeen) {
        void this.api.ownerExists(this.ref).then(
          (exists) => {
            if (!exists) this.cancelDone?.();
          },
          // Unknown: the next watch event checks again, and the cancel deadline bounds the wait.
          () => undefined,
        );
        return;
      }
      this.cancelDone();
    }
  }
}
