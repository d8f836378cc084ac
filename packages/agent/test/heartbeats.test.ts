import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { AGENT_PROTOCOL_VERSION } from '@liftoff/core';
import type { LaunchAgent } from '../src/agent.js';
import { stubAgent } from './stubAgent.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const INTERVAL_MS = 400;

/**
 * Issue 20: no redundant heartbeats. A poll that reaches the server already shows the agent alive, so the
 * heartbeat timer sends only after a whole interval without one. The server here is a stub that answers polls
 * after `pollHoldMs` and counts the heartbeats it gets (in syncs, or protocol 1's own call).
 */
describe('agent heartbeats', () => {
  let server: Server | undefined;
  let agent: LaunchAgent | undefined;
  const dirs: string[] = [];
  afterEach(async () => {
    await agent?.stop();
    agent = undefined;
    await new Promise((r) => server?.close(r));
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  /** Runs an agent against the stub for `ms` once it polls; returns the heartbeats it sent in that time. */
  async function heartbeatsWhile(pollHoldMs: number, ms: number): Promise<number> {
    let heartbeats = 0;
    let polls = 0;
    server = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        res.setHeader('content-type', 'application/json');
        const url = req.url ?? '';
        if (url === '/api/agents') {
          const now = Date.now();
          res.end(
            JSON.stringify({
              agent: {
                ...{ id: 'a1', name: 'a1', entity: 'default', hostname: 'h', queues: ['default'], version: 'x' },
                ...{ config: {}, max_jobs: 1, status: 'POLLING', status_reason: null, started_at: now },
                ...{ last_heartbeat_at: now, current_jobs: 0, stop_requested: null },
              },
              heartbeat_interval_ms: INTERVAL_MS,
              poll_timeout_ms: 30_000,
              active_runs: [],
              protocol_version: AGENT_PROTOCOL_VERSION,
              min_agent_protocol_version: 1,
            }),
          );
        } else if (url.endsWith('/poll')) {
          polls++;
          setTimeout(() => res.end(JSON.stringify({ items: [], cancel: [], stop_runs: [] })), pollHoldMs);
        } else if (url.endsWith('/sync')) {
          if ((JSON.parse(body) as { heartbeat?: unknown }).heartbeat) heartbeats++;
          res.end(JSON.stringify({ stop_runs: [], acks: [], reports: [], logs: [] }));
        } else if (url.endsWith('/heartbeat')) {
          heartbeats++;
          res.end(JSON.stringify({ stop_runs: [] }));
        } else res.end(JSON.stringify({ queues: [] }));
      });
    });
    await new Promise<void>((r) => server?.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const dataDir = mkdtempSync(join(tmpdir(), 'liftoff-heartbeats-'));
    dirs.push(dataDir);
    agent = stubAgent(url, dataDir);
    await agent.start();
    while (polls === 0) await sleep(10);
    const before = heartbeats;
    await sleep(ms);
    return heartbeats - before;
  }

  it('sends none while polls keep reaching the server within the interval', async () => {
    // Polls answered after a tenth of an interval: the agent is never silent for a whole one.
    expect(await heartbeatsWhile(INTERVAL_MS / 10, INTERVAL_MS * 6)).toBe(0);
  });

  it('sends them on its timer when a poll is held for longer than the interval', async () => {
    // The control: the same stub holding each poll for five intervals gets heartbeats meanwhile.
    expect(await heartbeatsWhile(INTERVAL_MS * 5, INTERVAL_MS * 6)).toBeGreaterThanOrEqual(2);
  });
});
