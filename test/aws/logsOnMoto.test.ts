import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CloudWatchLogsClient,
  CreateLogGroupCommand,
  CreateLogStreamCommand,
  PutLogEventsCommand,
} from '@aws-sdk/client-cloudwatch-logs';
import { LOG_GROUP, LogFollower } from '../../packages/agent/src/runners/sagemaker/logs.js';
import { motoAvailable, startMoto, type Moto } from '../helpers/moto.js';

/**
 * The SageMaker runner's log follower against moto's CloudWatch Logs: an implementation of the API that Liftoff
 * did not write (its own fake serves the runner's other tests). Streams are listed and read page by page until the
 * forward token repeats; a line is delivered once however often the follower looks, and several instances get
 * their `[algo-N]` prefix.
 */
describe.skipIf(!motoAvailable())('the SageMaker log follower on moto CloudWatch Logs', () => {
  let moto: Moto;
  let logs: CloudWatchLogsClient;
  beforeAll(async () => {
    moto = await startMoto();
    logs = new CloudWatchLogsClient({
      region: 'us-east-1',
      endpoint: moto.url,
      credentials: { accessKeyId: 'AKIDLIFTOFFTEST', secretAccessKey: 'liftoff-test-secret' },
    });
    await logs.send(new CreateLogGroupCommand({ logGroupName: LOG_GROUP }));
  });
  afterAll(async () => {
    logs?.destroy();
    await moto?.stop();
  });

  const put = async (stream: string, lines: string[], t0: number) => {
    for (let i = 0; i < lines.length; i += 500) {
      await logs.send(
        new PutLogEventsCommand({
          logGroupName: LOG_GROUP,
          logStreamName: stream,
          logEvents: lines.slice(i, i + 500).map((message, k) => ({ message, timestamp: t0 + i + k })),
        }),
      );
    }
  };

  it('reads a stream past one page, and each line once over several looks', async () => {
    const stream = 'paged/algo-1-1700000000';
    await logs.send(new CreateLogStreamCommand({ logGroupName: LOG_GROUP, logStreamName: stream }));
    // moto pages GetLogEvents at 10,000 events: more than that needs the forward token.
    const first = Array.from({ length: 12_000 }, (_, i) => `line ${i}`);
    const t0 = Date.now() - 60_000;
    await put(stream, first, t0);
    let out = '';
    const follower = new LogFollower(logs, 'paged', (t) => (out += t), pino({ level: 'silent' }), 1);
    // One look reads the whole stream, page after page; a second one adds nothing.
    await follower.poll();
    expect(out.split('\n').filter(Boolean)).toEqual(first);
    await follower.poll();
    expect(out.split('\n').filter(Boolean)).toHaveLength(first.length);
    await put(stream, ['late line'], t0 + 20_000);
    await follower.poll();
    expect(out.endsWith('line 11999\nlate line\n')).toBe(true);
    expect(out.match(/^late line$/gm)).toHaveLength(1);
  });

  it('prefixes each instance of a multi-instance job and leaves other jobs alone', async () => {
    const t0 = Date.now() - 30_000;
    for (const [stream, lines] of [
      ['multi/algo-1-1700000000', ['one from 1', 'two from 1']],
      ['multi/algo-2-1700000000', ['one from 2']],
      ['multi-other/algo-1-1700000000', ['not this job']],
    ] as const) {
      await logs.send(new CreateLogStreamCommand({ logGroupName: LOG_GROUP, logStreamName: stream }));
      await put(stream, [...lines], t0);
    }
    let out = '';
    await new LogFollower(logs, 'multi', (t) => (out += t), pino({ level: 'silent' }), 2).poll();
    expect(out).toBe('[algo-1] one from 1\n[algo-1] two from 1\n[algo-2] one from 2\n');
  });
});
