import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { AGENT_PROTOCOL_VERSION, ProtocolVersionError } from '@liftoff/core';
import type { LaunchAgent } from '../src/agent.js';
import { stubAgent } from './stubAgent.js';

/**
 * Issue 20: the server announces its agent-protocol version at registration, and an agent that cannot speak to it
 * stops at start with a message naming the side to upgrade. The servers here are stubs answering registration as a
 * server of another version would (a real one can only be of this version); the agent must say so and tell the
 * stub it stopped.
 */
describe('agent protocol version at start', () => {
  let server: Server | undefined;
  const dirs: string[] = [];
  afterEach(async () => {
    await new Promise((r) => server?.close(r));
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  async function startAgainst(
    announced: Record<string, number>,
  ): Promise<{ error: unknown; calls: string[]; agent: LaunchAgent }> {
    const calls: string[] = [];
    server = createServer((req, res) => {
      calls.push(`${req.method} ${req.url}`);
      req.resume();
      req.on('end', () => {
        res.setHeader('content-type', 'application/json');
        if (req.url === '/api/agents') {
          const now = Date.now();
          res.end(
            JSON.stringify({
              agent: {
                ...{ id: 'a1', name: 'a1', entity: 'default', hostname: 'h', queues: ['default'], version: 'x' },
                ...{ config: {}, max_jobs: 1, status: 'POLLING', status_reason: null, started_at: now },
                ...{ last_heartbeat_at: now, current_jobs: 0, stop_requested: null },
              },
              heartbeat_interval_ms: 30_000,
              poll_timeout_ms: 30_000,
              active_runs: [],
              ...announced,
            }),
          );
        } else res.end(JSON.stringify({ queues: [] }));
      });
    });
    await new Promise<void>((r) => server?.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const dataDir = mkdtempSync(join(tmpdir(), 'liftoff-protocol-'));
    dirs.push(dataDir);
    const agent = stubAgent(url, dataDir);
    const error = await agent.start().then(
      () => undefined,
      (e: unknown) => e,
    );
    return { error, calls, agent };
  }

  it('stops an agent whose server is too old for it, saying to upgrade the server', async () => {
    // A server of protocol 1 announced nothing.
    const { error, calls } = await startAgainst({});
    expect(error).toBeInstanceOf(ProtocolVersionError);
    expect((error as ProtocolVersionError).code).toBe('PROTOCOL_MISMATCH');
    expect((error as ProtocolVersionError).upgrade).toBe('server');
    expect((error as Error).message).toContain('Upgrade the Liftoff server');
    expect((error as Error).message).toContain(`speaks agent protocol ${AGENT_PROTOCOL_VERSION}`);
    expect(calls).toEqual(['POST /api/agents', 'POST /api/agents/a1/stopped']);
  });

  it('stops an agent too old for its server, saying to upgrade the agent', async () => {
    const { error, calls } = await startAgainst({
      protocol_version: AGENT_PROTOCOL_VERSION + 5,
      min_agent_protocol_version: AGENT_PROTOCOL_VERSION + 1,
    });
    expect((error as ProtocolVersionError).upgrade).toBe('agent');
    expect((error as Error).message).toContain('Upgrade the Liftoff agent');
    expect(calls).toEqual(['POST /api/agents', 'POST /api/agents/a1/stopped']);
  });

  it('starts against a server of its own protocol', async () => {
    const { error, calls, agent } = await startAgainst({
      protocol_version: AGENT_PROTOCOL_VERSION,
      min_agent_protocol_version: 1,
    });
    await agent.stop();
    // Past the version check it goes on to read its queues (none here, so it starts serving nothing).
    expect(error).toBeUndefined();
    expect(calls.slice(0, 2)).toEqual(['POST /api/agents', 'GET /api/entities/default/queues']);
  });
});
