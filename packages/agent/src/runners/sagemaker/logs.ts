import {
  DescribeLogStreamsCommand,
  GetLogEventsCommand,
  ResourceNotFoundException,
  type CloudWatchLogsClient,
} from '@aws-sdk/client-cloudwatch-logs';
import type { Logger } from 'pino';

export const LOG_GROUP = '/aws/sagemaker/TrainingJobs';

/**
 * Follows every `<job>/algo-N-<epoch>` stream of a training job: each poll lists the streams (paged) and reads each
 * from where it stopped, page by page until the forward token repeats (CloudWatch's "caught up"). With more than
 * one instance every line is prefixed `[algo-N]`. W&B reads the first page of the first stream once, at the end.
 */
export class LogFollower {
  private readonly tokens = new Map<string, string | undefined>();
  private busy: Promise<void> = Promise.resolve();

  constructor(
    private readonly client: CloudWatchLogsClient,
    private readonly jobName: string,
    private readonly onOutput: (text: string) => void,
    private readonly logger: Logger,
    /** Instances of the job (ResourceConfig.InstanceCount): decides the prefix from the first line on. */
    private instances: number,
  ) {}

  /** One pass over all streams; calls never overlap (a drain waits for a poll in flight). */
  poll(): Promise<void> {
    this.busy = this.busy
      .then(() => this.pass())
      .catch((err: unknown) => {
        this.logger.warn({ err, job: this.jobName }, 'reading the training job log failed; retrying at the next poll');
      });
    return this.busy;
  }

  private async pass(): Promise<void> {
    for (const stream of await this.streams()) {
      if (!this.tokens.has(stream)) this.tokens.set(stream, undefined);
    }
    if (this.tokens.size > 1) this.instances = Math.max(this.instances, this.tokens.size);
    for (const stream of [...this.tokens.keys()].sort(byInstance)) await this.read(stream);
  }

  private async streams(): Promise<string[]> {
    const names: string[] = [];
    let nextToken: string | undefined;
    do {
      try {
        const page = await this.client.send(
          new DescribeLogStreamsCommand({
            logGroupName: LOG_GROUP,
            logStreamNamePrefix: `${this.jobName}/`,
            ...(nextToken ? { nextToken } : {}),
          }),
        );
        for (const s of page.logStreams ?? []) if (s.logStreamName) names.push(s.logStreamName);
        nextToken = page.nextToken;
      } catch (e) {
        // No log group yet: no training job of the account has written a line so far.
        if (e instanceof ResourceNotFoundException) return names;
        throw e;
      }
    } while (nextToken);
    return names;
  }

  private async read(stream: string): Promise<void> {
    const prefix = this.instances > 1 ? `[${/\/(algo-\d+)/.exec(stream)?.[1] ?? stream}] ` : '';
    for (;;) {
      const token = this.tokens.get(stream);
      const page = await this.client.send(
        new GetLogEventsCommand({
          logGroupName: LOG_GROUP,
          logStreamName: stream,
          startFromHead: true,
          ...(token ? { nextToken: token } : {}),
        }),
      );
      const text = (page.events ?? []).map((e) => `${prefix}${e.message ?? ''}\n`).join('');
      if (text) this.onOutput(text);
      const next = page.nextForwardToken;
      if (!next || next === token) return;
      this.tokens.set(stream, next);
      if (!page.events?.length) return;
    }
  }
}

const instanceOf = (s: string) => Number(/\/algo-(\d+)/.exec(s)?.[1] ?? 0);
const byInstance = (a: string, b: string) => instanceOf(a) - instanceOf(b) || a.localeCompare(b);
