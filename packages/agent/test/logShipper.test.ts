import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import pino from 'pino';
import { join } from 'node:path';
import {
  LiftoffClient,
  LiftoffError,
  ServerUnreachableError,
  readCredentials,
  type LogKind,
  type SyncBody,
} from '@liftoff/core';
import { startBackendServer, startedRun, type BackendServer } from '../../server/test/factory.js';
import { LogShipper } from '../src/logShipper.js';
import { SyncChannel } from '../src/syncChannel.js';

/**
 * A client whose log uploads reach the real server, but whose answers can be lost on the way back (the chunk is
 * stored, the agent hears nothing): the case that used to wedge a run forever on 409s.
 */
class LossyClient extends LiftoffClient {
  loseNextAnswers = 0;
  down = false;
  override async appendLogs(runId: string, agentId: string, offset: number, data: string, kind?: LogKind) {
    if (this.down) throw new ServerUnreachableError('http://127.0.0.1:1', new Error('connection refused'));
    const answer = await super.appendLogs(runId, agentId, offset, data, kind);
    if (this.loseNextAnswers > 0) {
      this.loseNextAnswers--;
      throw new ServerUnreachableError('http://127.0.0.1:1', new Error('socket hang up'));
    }
    return answer;
  }
}

const logger = pino({ level: 'silent' });

describe('log shipping cannot wedge a run (issue 12, point 2)', () => {
  let s: BackendServer;
  let client: LossyClient;
  let runId: string;
  beforeAll(async () => {
    s = await startBackendServer('sqlite');
    const creds = readCredentials(join(s.home, '.config', 'liftoff', 'credentials'));
    client = new LossyClient({ baseUrl: s.server.url, apiKey: creds?.api_key ?? '' });
    runId = await startedRun(s.client, 'shipper');
  });
  afterAll(async () => s.close());

  it('resyncs to the stored size when an answer was lost and the chunk grew meanwhile: nothing lost or twice', async () => {
    const shipper = new LogShipper(client, 'shipper', runId, logger);
    shipper.write('line 1\n');
    client.loseNextAnswers = 1;
    const first = shipper.flush();
    // The first answer is lost; while the shipper waits to retry, more output joins the same pending chunk, so the
    // retry is no longer the stored chunk and the server refuses its offset.
    await new Promise((r) => setTimeout(r, 120));
    shipper.write('line 2 — ünïcode\n');
    shipper.note('a note');
    shipper.write('line 3\n');
    await first;
    await shipper.flush();
    const page = await s.client.readLogs(runId);
    expect(page.data).toBe('line 1\nline 2 — ünïcode\n[liftoff] a note\nline 3\n');
    expect(shipper.resyncs).toBe(1);
  });

  it('gives up after its deadline instead of retrying forever, so the run can still be reported', async () => {
    const shipper = new LogShipper(client, 'shipper', runId, logger, (await s.client.getRun(runId)).log_size, 300);
    client.down = true;
    shipper.write('never arrives\n');
    const started = Date.now();
    await shipper.flush();
    expect(Date.now() - started).toBeLessThan(5_000);
    client.down = false;
    expect((await s.client.readLogs(runId)).data).not.toContain('never arrives');
  });

  it('stops at once on an answer that will not change (another agent holds the run)', async () => {
    const intruder = new LogShipper(client, 'not-the-holder', runId, logger, 0, 60_000);
    intruder.write('x\n');
    const started = Date.now();
    await intruder.flush();
    expect(Date.now() - started).toBeLessThan(2_000);
    await expect(client.appendLogs(runId, 'not-the-holder', 0, 'x')).rejects.toBeInstanceOf(LiftoffError);
  });
});

describe('log shipping past the log cap and after the run was lost (issue 12, points 2 and 3)', () => {
  let s: BackendServer;
  let client: CountingClient;
  beforeAll(async () => {
    s = await startBackendServer('sqlite', { maxRunLogBytes: 1000 });
    const creds = readCredentials(join(s.home, '.config', 'liftoff', 'credentials'));
    client = new CountingClient({ baseUrl: s.server.url, apiKey: creds?.api_key ?? '' });
  });
  afterAll(async () => s.close());

  it('ships on past the cap without resyncing, and the server keeps the cap and one note', async () => {
    const runId = await startedRun(s.client, 'capped');
    const shipper = new LogShipper(client, 'capped', runId, logger);
    for (let i = 0; i < 50; i++) {
      shipper.write(`${String(i).padStart(99, '.')}\n`);
      if (i % 10 === 9) await shipper.flush();
    }
    shipper.note('run finished');
    await shipper.flush();
    expect(shipper.resyncs).toBe(0);
    const page = await s.client.readLogs(runId);
    expect(page.notes).toHaveLength(1);
    expect(page.notes[0]?.offset).toBe(1000);
    // 50 lines of 100 bytes and the 23-byte note, less the 1000 stored.
    expect(page.data).toMatch(/bytes dropped since: +4023\./);
    await s.client.reportRun(runId, { agent_id: 'capped', state: 'finished', exit_code: 0 });
    expect((await s.client.getRun(runId)).status).toBe('finished');
  });

  it('stops shipping at once when the server says the run is lost', async () => {
    const runId = await startedRun(s.client, 'fenced');
    await s.exec(`UPDATE runs SET status = 'lost' WHERE id = '${runId}'`);
    const shipper = new LogShipper(client, 'fenced', runId, logger, 0, 60_000);
    client.calls = 0;
    shipper.write('late output\n');
    await shipper.flush();
    expect(shipper.lost).toBe(true);
    shipper.write('more\n');
    shipper.note('run finished');
    await shipper.flush();
    expect(client.calls).toBe(1);
    expect((await s.client.readLogs(runId)).data).toBe('');
  });
});

/** Counts log uploads. */
class CountingClient extends LiftoffClient {
  calls = 0;
  override async appendLogs(runId: string, agentId: string, offset: number, data: string, kind?: LogKind) {
    this.calls++;
    return super.appendLogs(runId, agentId, offset, data, kind);
  }
}
describe('log shipping masks the run secrets (issue 12, point 6)', () => {
  let s: BackendServer;
  let runId: string;
  beforeAll(async () => {
    s = await startBackendServer('sqlite');
    runId = await startedRun(s.client, 'masking');
  });
  afterAll(async () => s.close());

  it('masks a secret the job prints in two pieces shipped apart, and in notes', async () => {
    const shipper = new LogShipper(s.client, 'masking', runId, logger);
    shipper.maskSecrets(['hunter2-value']);
    shipper.write('token: hunt');
    // Longer than the shipper's flush delay: the first piece is shipped alone, without the start of the secret.
    await new Promise((r) => setTimeout(r, 400));
    expect((await s.client.readLogs(runId)).data).toBe('token: ');
    shipper.write('er2-value and more\n');
    shipper.note('failed: bad hunter2-value');
    await shipper.flush();
    expect((await s.client.readLogs(runId)).data).toBe('token: *** and more\n[liftoff] failed: bad ***\n');
  });
});

/** Syncs reach the real server, but their answers can be lost on the way back (everything in them was applied). */
class LossySyncClient extends LiftoffClient {
  loseNextAnswers = 0;
  bodies: SyncBody[] = [];
  override async sync(agentId: string, body: SyncBody) {
    this.bodies.push(body);
    const answer = await super.sync(agentId, body);
    if (this.loseNextAnswers > 0) {
      this.loseNextAnswers--;
      throw new ServerUnreachableError('http://127.0.0.1:1', new Error('socket hang up'));
    }
    return answer;
  }
}

describe('log shipping through the batched sync (issue 20)', () => {
  let s: BackendServer;
  let client: LossySyncClient;
  beforeAll(async () => {
    s = await startBackendServer('sqlite');
    const creds = readCredentials(join(s.home, '.config', 'liftoff', 'credentials'));
    client = new LossySyncClient({ baseUrl: s.server.url, apiKey: creds?.api_key ?? '' });
  });
  afterAll(async () => s.close());

  it('ships the logs of several runs in one request, and resyncs exactly after a lost answer', async () => {
    // Two runs of one agent, the second acked through the channel.
    const first = await startedRun(s.client, 'batcher');
    const item = await s.client.push('default', 'default', {
      spec: { source: { type: 'git', url: 'https://git.example.com/x.git' }, entry_point: ['true'] },
    });
    await s.client.poll('batcher', { queues: ['default'], max_items: 1, wait_ms: 0 });
    const channel = new SyncChannel(client, 'batcher');
    const second = (await channel.ackItem(item.id)).id;
    const a = new LogShipper(channel, 'batcher', first, logger);
    const b = new LogShipper(channel, 'batcher', second, logger);
    a.write('a 1\n');
    b.write('b 1\n');
    client.bodies = [];
    await Promise.all([a.flush(), b.flush()]);
    expect(client.bodies.map((body) => body.logs?.map((l) => l.run_id))).toEqual([[first, second]]);

    a.write('a 2\n');
    client.loseNextAnswers = 1;
    const flushing = a.flush();
    // As in the single-call case: while the shipper waits to retry, the pending chunk grows, so the retry is
    // refused (CONFLICT, answered for this entry) and the shipper resyncs to what the server holds.
    await new Promise((r) => setTimeout(r, 120));
    a.write('a 3 — ünïcode\n');
    await flushing;
    await a.flush();
    expect(a.resyncs).toBe(1);
    expect((await s.client.readLogs(first)).data).toBe('a 1\na 2\na 3 — ünïcode\n');
    expect((await s.client.readLogs(second)).data).toBe('b 1\n');
  });
});

describe('when the shipper sends (issue 20: fewer uploads per short run)', () => {
  /** Records each upload; answers as a server holding everything sent would. */
  const recorder = () => {
    const sent: Array<{ kind: LogKind | undefined; data: string }> = [];
    const transport = {
      appendLogs: async (_run: string, _agent: string, offset: number, data: string, kind?: LogKind) => {
        sent.push({ kind, data });
        return { size: offset + Buffer.byteLength(data) };
      },
      getRun: async () => {
        throw new Error('not used');
      },
    } as unknown as Pick<LiftoffClient, 'appendLogs' | 'getRun'>;
    return { sent, transport };
  };

  it('holds notes alone up to a second, sends output within 200 ms, and the notes before it with it', async () => {
    vi.useFakeTimers();
    try {
      const { sent, transport } = recorder();
      const shipper = new LogShipper(transport, 'a', 'r', logger);
      shipper.note('starting');
      await vi.advanceTimersByTimeAsync(900);
      expect(sent).toEqual([]);
      await vi.advanceTimersByTimeAsync(200);
      expect(sent).toEqual([{ kind: 'note', data: '[liftoff] starting\n' }]);

      shipper.note('again');
      await vi.advanceTimersByTimeAsync(100);
      shipper.write('out\n');
      await vi.advanceTimersByTimeAsync(150);
      expect(sent).toHaveLength(1);
      await vi.advanceTimersByTimeAsync(100);
      expect(sent.slice(1)).toEqual([
        { kind: 'note', data: '[liftoff] again\n' },
        { kind: 'output', data: 'out\n' },
      ]);
    } finally {
      vi.useRealTimers();
    }
  });

  it("a short run's notes and its end go in one upload; output pending at its end is sent before", async () => {
    const { sent, transport } = recorder();
    const shipper = new LogShipper(transport, 'a', 'r', logger);
    shipper.note('run r of item i');
    shipper.note('starting: "true"');
    await shipper.prepareEnd();
    expect(sent).toEqual([]);
    shipper.note('run finished (exit code 0)');
    await shipper.flush();
    expect(sent).toEqual([
      {
        kind: 'note',
        data: '[liftoff] run r of item i\n[liftoff] starting: "true"\n[liftoff] run finished (exit code 0)\n',
      },
    ]);
  });

  it('prepareEnd sends output (and the notes before it) first, then leaves nothing pending', async () => {
    const { sent, transport } = recorder();
    const shipper = new LogShipper(transport, 'a', 'r', logger);
    shipper.note('starting');
    shipper.write('hello\n');
    await shipper.prepareEnd();
    expect(sent).toEqual([
      { kind: 'note', data: '[liftoff] starting\n' },
      { kind: 'output', data: 'hello\n' },
    ]);
    shipper.note('run finished');
    await shipper.flush();
    expect(sent.slice(2)).toEqual([{ kind: 'note', data: '[liftoff] run finished\n' }]);
  });
});
