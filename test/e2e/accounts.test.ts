import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupAll, cli, startAgent, startServer, type TestServer } from '../helpers/procs.js';

/** Users, teams and keys from the CLI, and a real agent running on an agent key scoped to its team. */
describe('liftoff users, teams and keys', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startServer();
  });
  afterAll(cleanupAll);

  it('creates a user, a team and keys; each key acts only where it may', async () => {
    const ok = async (args: string[], env = server.env) => {
      const r = await cli(args, env);
      expect(r.code, r.output).toBe(0);
      return r.output;
    };
    expect(await ok(['users', 'create', 'carol'])).toContain('created user carol with entity carol');
    expect(await ok(['teams', 'create', 'vision'])).toContain('created team vision');
    expect(await ok(['teams', 'add-member', 'vision', 'carol'])).toContain('team vision: carol');
    const carolKey = (await ok(['keys', 'create', 'carol-laptop', '--user', 'carol', '--role', 'admin'])).split(
      '\n',
    )[0];
    const carol = { ...server.env, LIFTOFF_API_KEY: carolKey as string };
    await ok(['queue', 'create', 'train', '-e', 'vision'], carol);
    const agentKey = (await ok(['keys', 'create', 'vision-agents', '--agent', '--entity', 'vision'], carol)).split(
      '\n',
    )[0];
    const agentEnv = { ...server.env, LIFTOFF_API_KEY: agentKey as string };

    // The agent key runs a real agent for its team…
    const agent = await startAgent(
      { ...server, env: agentEnv },
      { queues: ['train'], name: 'vision-1', extra: ['-e', 'vision'] },
    );
    const item = await ok(
      ['launch', '-q', 'train', '-e', 'vision', '--code', 'examples/hello', '-E', 'true', '--wait'],
      carol,
    );
    expect(item).toMatch(/finished/);
    await agent.stop();
    // …but cannot push, and sees nothing of the default entity; carol cannot see it either.
    const push = await cli(
      ['launch', '-q', 'train', '-e', 'vision', '--git', 'https://example.com/r.git', '-E', 'true'],
      agentEnv,
    );
    expect(push.code).toBe(2);
    expect(push.output).toContain('An agent key may only run the agent protocol and read');
    const foreign = await cli(['queue', 'list', '-e', 'default'], carol);
    expect(foreign.code).toBe(2);
    expect(foreign.output).toContain('Entity "default" not found');
  });
});
