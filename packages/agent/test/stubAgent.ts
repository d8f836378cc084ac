import pino from 'pino';
import type Dockerode from 'dockerode';
import { LiftoffClient } from '@liftoff/core';
import { LaunchAgent } from '../src/agent.js';

/**
 * An agent (id a1, entity default, queue default, one slot) talking to a stub server at `url`, with no Docker
 * engine and no registry logins: for tests of what the agent says to its server.
 */
export function stubAgent(url: string, dataDir: string): LaunchAgent {
  return new LaunchAgent({
    client: new LiftoffClient({ baseUrl: url, apiKey: 'k' }),
    config: {
      entity: 'default',
      maxJobs: 1,
      queues: ['default'],
      verbosity: 0,
      stopGraceSeconds: 1,
      pollIntervalMs: 0,
      file: {},
    },
    identity: { id: 'a1', name: 'a1' },
    hostname: 'h',
    dataDir,
    agentEnv: {},
    logger: pino({ level: 'silent' }),
    docker: {} as Dockerode,
    credentials: {} as never,
    homeDir: dataDir,
  });
}
