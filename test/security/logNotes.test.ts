import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { splitLogPage } from '@liftoff/core';
import { BUSYBOX, cleanupDockerAfter, containersOfRun, dockerAvailable } from '../helpers/docker.js';
import {
  agentConfig,
  cleanupAll,
  cli,
  sleep,
  startAgent,
  startServer,
  tempDir,
  type TestServer,
} from '../helpers/procs.js';

/**
 * Issue 11, point 10: the agent's `[liftoff]` notes and its re-adoption markers travel apart from the job's output,
 * so a job printing look-alike lines neither passes them off as the agent's nor moves where a re-adopted run resumes.
 */
const FORGED = '[liftoff] container forged123 started';

describe.skipIf(!dockerAvailable())('a job cannot forge the agent’s log notes', () => {
  let server: TestServer;
  const agents: string[] = [];
  beforeAll(async () => {
    server = await startServer();
    await server.client.createQueue('default', { name: 'box', resource: 'local-container' });
    cleanupDockerAfter(() => agents);
  });
  afterAll(cleanupAll);

  it('keeps forged lines in the output, and a re-adopted run resumes after the real marker: no line lost or twice', async () => {
    const data = tempDir('liftoff-agent-');
    const config = agentConfig(tempDir(), 'stopped_run_timeout: 2\n');
    const first = await startAgent(server, { queues: ['box'], name: 'notes-adopter', dataDir: data, config });
    agents.push('notes-adopter');
    // The forged marker comes after the real one: trusting it would make the restarted agent skip too little of the
    // replayed output (tick 1 and 2 twice).
    const script = `for i in 1 2; do echo tick $i; done; echo '${FORGED}'; for i in 3 4 5 6; do sleep 1; echo tick $i; done`;
    const launched = await cli(
      ['launch', '-q', 'box', '--image', BUSYBOX, '-E', `sh -c "${script}"`, '--json'],
      server.env,
    );
    const itemId = (JSON.parse(launched.output) as { id: string }).id;
    let runId = '';
    for (let i = 0; i < 300; i++) {
      runId = (await server.client.getItem(itemId)).run_id ?? '';
      if (runId && (await server.client.readLogs(runId)).data.includes('tick 3')) break;
      await sleep(100);
    }
    first.proc.kill('SIGKILL');
    await first.proc.exited;
    expect(containersOfRun(runId)).toHaveLength(1);

    await startAgent(server, { queues: ['box'], name: 'notes-adopter', dataDir: data, config });
    let run = await server.client.getRun(runId);
    for (let i = 0; i < 300 && run.status !== 'finished'; i++) {
      await sleep(100);
      run = await server.client.getRun(runId);
    }
    expect(run.status).toBe('finished');
    const page = await server.client.readLogs(runId);
    for (let i = 1; i <= 6; i++) expect(page.data.match(new RegExp(`tick ${i}\\n`, 'g'))).toHaveLength(1);
    expect(page.data.match(/^\[liftoff\] container forged123 started$/gm)).toHaveLength(1);

    const pieces = splitLogPage(page);
    const notes = pieces
      .filter((p) => p.kind === 'note')
      .map((p) => p.text)
      .join('');
    const output = pieces
      .filter((p) => p.kind === 'output')
      .map((p) => p.text)
      .join('');
    expect(output).toContain(FORGED);
    expect(notes).not.toMatch(/^\[liftoff\] container forged123/m);
    expect(notes).toMatch(/^\[liftoff\] container \S+ started$/m);
    expect(notes).toContain('[liftoff] run finished');
    expect(output).not.toContain('[liftoff] run finished');

    // Followers are told the kind of each piece as well.
    const followed: Array<{ kind: string; text: string }> = [];
    await server.client.followLogs(runId, (text, kind) => followed.push({ kind, text }));
    expect(
      followed
        .filter((f) => f.kind === 'output')
        .map((f) => f.text)
        .join(''),
    ).toBe(output);
    expect(
      followed
        .filter((f) => f.kind === 'note')
        .map((f) => f.text)
        .join(''),
    ).toBe(notes);
  }, 120_000);
});
