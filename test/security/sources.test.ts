import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import { createServer as createTcpServer } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gitRepo } from '../helpers/jobs.js';
import {
  agentConfig,
  cleanupAll,
  cli,
  onCleanup,
  startAgent,
  startServer,
  tempDir,
  type TestServer,
} from '../helpers/procs.js';

const runIdOf = (output: string): string => /run (\w+) (?:started|finished|failed|stopped)/.exec(output)?.[1] ?? '';

const git = (cwd: string, ...args: string[]) =>
  execFileSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@t', '-c', 'protocol.file.allow=always', ...args], {
    cwd,
    stdio: 'pipe',
  })
    .toString()
    .trim();

/** An HTTPS server on 127.0.0.1 that asks every request for Basic credentials and records any it is sent. */
async function credentialTrap(dir: string): Promise<{ port: number; ca: string; authorizations: string[] }> {
  const key = join(dir, 'key.pem');
  const cert = join(dir, 'cert.pem');
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-days',
      '1',
      '-subj',
      '/CN=127.0.0.1',
      '-addext',
      'subjectAltName=IP:127.0.0.1',
      '-keyout',
      key,
      '-out',
      cert,
    ],
    { stdio: 'ignore' },
  );
  const authorizations: string[] = [];
  const server: Server = createServer({ key: readFileSync(key), cert: readFileSync(cert) }, (req, res) => {
    if (req.headers.authorization) authorizations.push(req.headers.authorization);
    res.writeHead(401, { 'www-authenticate': 'Basic realm="trap"' }).end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  onCleanup(() => new Promise<void>((r) => server.close(() => r())));
  const address = server.address();
  return { port: typeof address === 'object' && address ? address.port : 0, ca: cert, authorizations };
}

/** A port on 127.0.0.1 that nothing listens on. */
async function closedPort(): Promise<number> {
  const srv = createTcpServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const address = srv.address();
  await new Promise<void>((r) => srv.close(() => r()));
  return typeof address === 'object' && address ? address.port : 1;
}

describe('security: git sources', () => {
  let server: TestServer;
  /** What the agent's own git credential helper and ssh command were asked, and with which SSH agent. */
  let record: string;
  let trap: Awaited<ReturnType<typeof credentialTrap>>;
  let sshPort: number;
  /** The agent's environment: its own HOME (with ~/.gitconfig), an SSH agent socket and the trap's CA. */
  let agentServer: TestServer;

  beforeAll(async () => {
    server = await startServer();
    await server.client.createQueue('default', { name: 'git', resource: 'local-process', resource_args: {} });
    const tools = tempDir('liftoff-git-tools-');
    record = join(tools, 'record');
    trap = await credentialTrap(tools);
    sshPort = await closedPort();
    const helper = join(tools, 'credential-helper');
    writeFileSync(
      helper,
      `#!/bin/sh\necho "helper $1 SSH_AUTH_SOCK=$SSH_AUTH_SOCK" >> ${record}\ncat > /dev/null\necho username=agent\necho password=agent-secret\n`,
    );
    const fakeSsh = join(tools, 'fake-ssh');
    writeFileSync(fakeSsh, `#!/bin/sh\necho "ssh $* SSH_AUTH_SOCK=$SSH_AUTH_SOCK" >> ${record}\nexit 1\n`);
    chmodSync(helper, 0o755);
    chmodSync(fakeSsh, 0o755);
    // The agent user's git setup, as an operator with private repositories has it.
    writeFileSync(
      join(server.home, '.gitconfig'),
      `[credential]\n\thelper = ${helper}\n[core]\n\tsshCommand = ${fakeSsh}\n`,
    );
    agentServer = {
      ...server,
      env: { ...server.env, SSH_AUTH_SOCK: join(tools, 'agent.sock'), GIT_SSL_CAINFO: trap.ca },
    };
  });
  afterAll(cleanupAll);

  const sentSecret = () =>
    trap.authorizations.some((a) =>
      Buffer.from(a.replace(/^Basic /, ''), 'base64')
        .toString()
        .includes('agent-secret'),
    );
  const recorded = () => (existsSync(record) ? readFileSync(record, 'utf8') : '');
  const runGit = async (queue: string, url: string) => {
    const r = await cli(['launch', '-q', queue, '--git', url, '-E', 'node main.mjs', '--wait'], server.env);
    return { ...r, run: await server.client.getRun(runIdOf(r.output)) };
  };
  const agentOn = async (queue: string, yaml: string) => {
    await server.client.createQueue('default', { name: queue, resource: 'local-process', resource_args: {} });
    return startAgent(agentServer, { queues: [queue], config: agentConfig(tempDir(), yaml) });
  };

  it('refuses a file:// repository unless the agent config allows it', async () => {
    const repo = gitRepo({ 'main.mjs': 'console.log("cloned from the agent host")\n' });
    const agent = await agentOn('no-file', 'max_jobs: 1\n');
    const r = await runGit('no-file', repo.url);
    expect(r.code).toBe(1);
    expect(r.run).toMatchObject({ status: 'failed', error_stage: 'agent' });
    expect(r.run.error_message).toContain('this agent does not clone repositories of its own machine (file://)');
    expect(r.output).not.toContain('cloned from the agent host');
    await agent.stop();

    const allowed = await agentOn('file-ok', 'git:\n  allow-file: true\n');
    const ok = await runGit('file-ok', repo.url);
    expect(ok.output).toContain('cloned from the agent host');
    expect(ok.code).toBe(0);
    await allowed.stop();
  }, 60_000);

  it('never fetches a file:// submodule, even with allow-file on', async () => {
    const secret = gitRepo({ 'secret.txt': 'host repository content' });
    const top = gitRepo({ 'main.mjs': 'console.log("top ran")\n' });
    git(top.dir, 'submodule', '--quiet', 'add', secret.url, 'vendored');
    git(top.dir, 'commit', '--quiet', '-m', 'add submodule');
    const relative = gitRepo({ 'main.mjs': 'console.log("top ran")\n' });
    git(relative.dir, 'submodule', '--quiet', 'add', secret.url, 'vendored');
    git(
      relative.dir,
      'config',
      '--file',
      '.gitmodules',
      'submodule.vendored.url',
      `../${secret.dir.split('/').at(-1)}`,
    );
    git(relative.dir, 'commit', '--quiet', '-am', 'relative submodule');
    const agent = await agentOn('submodules', 'git:\n  allow-file: true\n');
    for (const url of [top.url, relative.url]) {
      const r = await runGit('submodules', url);
      expect(r.code).toBe(1);
      expect(r.run).toMatchObject({ status: 'failed', error_stage: 'agent' });
      expect(r.run.error_message).toContain('Refused git submodule "vendored"');
      expect(r.run.error_message).toContain('submodules never use the file protocol');
      expect(r.output).not.toContain('top ran');
    }
    await agent.stop();
  }, 60_000);

  it("offers the agent's git and SSH credentials only to hosts listed in git.credential-hosts", async () => {
    const https = `https://127.0.0.1:${trap.port}/team/private.git`;
    const ssh = `ssh://git@127.0.0.1:${sshPort}/team/private.git`;
    const unlisted = await agentOn('unlisted', 'git:\n  credential-hosts: [github.com]\n');
    const viaHttps = await runGit('unlisted', https);
    expect(viaHttps.run).toMatchObject({ status: 'failed', error_stage: 'agent' });
    expect(viaHttps.run.error_message).toContain('Authentication failed');
    // The agent's ssh command was not used: plain ssh, without keys or agent, reached the (closed) port.
    const viaSsh = await runGit('unlisted', ssh);
    expect(viaSsh.run).toMatchObject({ status: 'failed', error_stage: 'agent' });
    expect(viaSsh.run.error_message).toContain('Connection refused');
    // The clone reached the trap (so TLS and the request worked) but git had nothing to answer its challenge with.
    expect(sentSecret()).toBe(false);
    expect(recorded()).toBe('');
    await unlisted.stop();

    // The same agent setup for a listed host: its helper, ssh command and SSH agent are used (the trap works).
    const listed = await agentOn(
      'listed',
      `git:\n  credential-hosts: ["127.0.0.1:${trap.port}", "127.0.0.1:${sshPort}"]\n`,
    );
    await runGit('listed', https);
    await runGit('listed', ssh);
    expect(sentSecret()).toBe(true);
    expect(recorded()).toMatch(/^helper get SSH_AUTH_SOCK=\S+agent\.sock$/m);
    expect(recorded()).toMatch(new RegExp(`^ssh .*127\\.0\\.0\\.1.* SSH_AUTH_SOCK=\\S+agent\\.sock$`, 'm'));
    await listed.stop();
  }, 60_000);
});
