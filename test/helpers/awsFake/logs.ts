import { AwsError } from './errors.js';
import type { FakeAwsServer } from './server.js';

interface Stream {
  name: string;
  created: number;
  events: { timestamp: number; message: string; ingestionTime: number }[];
}

/**
 * CloudWatch Logs as SageMaker uses it: groups of streams of events. GetLogEvents pages forward with tokens
 * `f/<position>`; at the end of a stream it hands back the token it was given, which is how AWS tells a reader
 * it has caught up ("the same token you passed in").
 */
export class FakeLogs {
  readonly groups = new Map<string, Map<string, Stream>>();
  /** Events per GetLogEvents page (AWS: up to 10,000 or 1 MB); tests lower it to force paging. */
  pageSize = 10_000;
  /** Streams per DescribeLogStreams page (AWS: 50). */
  streamPageSize = 50;

  constructor(
    server: FakeAwsServer,
    private readonly account: string,
    private readonly region: string,
  ) {
    server.on('logs', 'DescribeLogStreams', (i) => this.describeLogStreams(i));
    server.on('logs', 'GetLogEvents', (i) => this.getLogEvents(i));
  }

  append(group: string, stream: string, message: string): void {
    let g = this.groups.get(group);
    if (!g) this.groups.set(group, (g = new Map()));
    let s = g.get(stream);
    if (!s) g.set(stream, (s = { name: stream, created: Date.now(), events: [] }));
    const now = Date.now();
    s.events.push({ timestamp: now, message, ingestionTime: now });
  }

  messages(group: string, stream: string): string[] {
    return (
      this.groups
        .get(group)
        ?.get(stream)
        ?.events.map((e) => e.message) ?? []
    );
  }

  private group(name: unknown): Map<string, Stream> {
    const g = this.groups.get(String(name));
    if (!g) throw new AwsError('ResourceNotFoundException', 'The specified log group does not exist.');
    return g;
  }

  private describeLogStreams(input: Record<string, unknown>): Record<string, unknown> {
    const prefix = typeof input.logStreamNamePrefix === 'string' ? input.logStreamNamePrefix : '';
    if (prefix && input.orderBy === 'LastEventTime') {
      throw new AwsError('InvalidParameterException', 'Cannot order by LastEventTime with a logStreamNamePrefix.');
    }
    const all = [...this.group(input.logGroupName).values()]
      .filter((s) => s.name.startsWith(prefix))
      .sort((a, b) => a.name.localeCompare(b.name));
    const start = typeof input.nextToken === 'string' ? Number(input.nextToken.replace(/^s\//, '')) : 0;
    const limit = Math.min(typeof input.limit === 'number' ? input.limit : 50, this.streamPageSize);
    const page = all.slice(start, start + limit);
    return {
      logStreams: page.map((s) => ({
        logStreamName: s.name,
        creationTime: s.created,
        arn: `arn:aws:logs:${this.region}:${this.account}:log-group:${String(input.logGroupName)}:log-stream:${s.name}`,
        storedBytes: 0,
        ...(s.events.length
          ? {
              firstEventTimestamp: s.events[0]?.timestamp,
              lastEventTimestamp: s.events.at(-1)?.timestamp,
              lastIngestionTime: s.events.at(-1)?.ingestionTime,
            }
          : {}),
      })),
      ...(start + limit < all.length ? { nextToken: `s/${start + limit}` } : {}),
    };
  }

  private getLogEvents(input: Record<string, unknown>): Record<string, unknown> {
    const stream = this.group(input.logGroupName).get(String(input.logStreamName));
    if (!stream) throw new AwsError('ResourceNotFoundException', 'The specified log stream does not exist.');
    if (input.startFromHead !== true && input.nextToken === undefined) {
      // Without startFromHead AWS returns the newest events first; Liftoff always reads from the head.
      throw new AwsError('InvalidParameterException', 'The fake serves only startFromHead reads.');
    }
    const token = typeof input.nextToken === 'string' ? input.nextToken : undefined;
    const pos = token ? Number(/^f\/(\d+)$/.exec(token)?.[1] ?? NaN) : 0;
    if (!Number.isInteger(pos)) throw new AwsError('InvalidParameterException', 'The specified nextToken is invalid.');
    const limit = Math.min(typeof input.limit === 'number' ? input.limit : 10_000, this.pageSize);
    const events = stream.events.slice(pos, pos + limit);
    const next = `f/${String(pos + events.length).padStart(20, '0')}`;
    return {
      events,
      // Caught up: the same token back, as AWS does.
      nextForwardToken: events.length === 0 && token ? token : next,
      nextBackwardToken: `b/${String(pos).padStart(20, '0')}`,
    };
  }
}
