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

  it('manages members with roles and lists, expires and revokes keys', async () => {
    const ok = async (args: string[], env = server.env) => {
      const r = await cli(args, env);
      expect(r.code, r.output).toBe(0);
      return r.output;
    };
    await ok(['users', 'create', 'dave']);
    await ok(['teams', 'create', 'audio']);
    expect(await ok(['members', 'add', 'audio', 'dave'])).toContain('team audio: dave (admin)');
    await ok(['users', 'create', 'erin']);
    expect(await ok(['members', 'add', 'audio', 'erin', '--role', 'member'])).toContain('erin (member)');
    expect(await ok(['members', 'list', 'audio'])).toMatch(/erin\s+member/);
    const last = await cli(['members', 'remove', 'audio', 'dave'], server.env);
    expect(last.code).toBe(2);
    expect(last.output).toContain('"dave" is the last admin of "audio"');
    expect(await ok(['members', 'remove', 'audio', 'erin'])).toContain('team audio: dave (admin)');

    const bad = await cli(['keys', 'create', 'k', '--user', 'dave', '--expires-in', '0d'], server.env);
    expect(bad.code).toBe(2);
    expect(bad.output).toContain('--expires-in must be a positive number');
    const key = (await ok(['keys', 'create', 'dave-tmp', '--user', 'dave', '--expires-in', '30d'])).split('\n')[0];
    const listed = JSON.parse(await ok(['keys', 'list', '--json'])) as Array<{ name: string; expires_at: number }>;
    const tmp = listed.find((k) => k.name === 'dave-tmp');
    expect(tmp?.expires_at).toBeGreaterThan(Date.now() + 29 * 86_400_000);
    expect(await ok(['keys', 'list'])).toMatch(/dave-tmp\s+member\s+dave/);
    const dave = { ...server.env, LIFTOFF_API_KEY: key as string };
    await ok(['queue', 'list', '-e', 'audio'], dave);
    expect(await ok(['keys', 'revoke', 'dave-tmp'])).toContain('revoked key dave-tmp');
    const refused = await cli(['queue', 'list', '-e', 'audio'], dave);
    expect(refused.code).toBe(3); // the CLI's exit code for UNAUTHENTICATED
    expect(refused.output).toContain('Unknown API key');
  });
});
