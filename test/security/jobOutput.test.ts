import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { codeDir } from '../helpers/jobs.js';
import { isRoot } from '../helpers/probe.js';
import { alive, cleanupAll, cli, jobWritableDir, outputOf, startAgent, startServer, until } from '../helpers/procs.js';

/**
 * Issue #12, point 3: what a restarted agent trusts about a local-process job (its output file and its exit status)
 * is out of the job's reach. The job, under a uid of its own, attacks both while its agent is dead: truncating its
 * stdout/stderr, opening or truncating the output file by path, forging a "finished" status, killing its supervisor,
 * or connecting to the supervisor's socket (to have it start a process as root).
 */

const ATTACKER = `
import errno, json, os, signal, socket, sys, time
sync = os.environ["SYNC"]
state = os.path.join(os.environ["STATE_ROOT"], os.environ["LIFTOFF_RUN_ID"])
open(os.path.join(sync, "pid"), "w").write(str(os.getpid()))
for i in range(1, 6): print("line %d" % i, flush=True)
while not os.path.exists(os.path.join(sync, "killed")): time.sleep(0.02)
def attempt(name, fn):
    try:
        fn()
        print("ATTEMPT", name, "OK", flush=True)
    except PermissionError:
        print("ATTEMPT", name, "DENIED", flush=True)
    except OSError as e:
        print("ATTEMPT", name, "REFUSED", errno.errorcode.get(e.errno, e.errno), flush=True)
def write(path, data):
    with open(path, "w") as f: f.write(data)
def reopen_truncate(path):
    with open(path, "r+") as f: f.truncate(0)
forged = json.dumps({"code": 0, "signal": None})
attempt("truncate-stdout", lambda: os.ftruncate(1, 0))
attempt("truncate-stderr", lambda: os.ftruncate(2, 0))
attempt("reopen-output", lambda: reopen_truncate(os.path.join(state, "output.log")))
attempt("truncate-output", lambda: os.truncate(os.path.join(state, "output.log"), 0))
attempt("write-status", lambda: write(os.path.join(state, "status.json"), forged))
attempt("write-status-tmp", lambda: write(os.path.join(state, "status.json.tmp"), forged))
attempt("kill-supervisor", lambda: os.kill(os.getppid(), signal.SIGKILL))
attempt("supervisor-fds", lambda: os.listdir("/proc/%d/fd" % os.getppid()))
attempt("supervisor-socket", lambda: socket.socket(socket.AF_UNIX).connect(os.environ["SUPERVISOR_SOCKET"]))
for i in range(6, 11): print("line %d" % i, flush=True)
sys.exit(5)
`;

describe.skipIf(!isRoot())('a local-process job under a uid of its own, while its agent is dead', () => {
  afterAll(cleanupAll);

  it('cannot truncate its output, write its exit status, or kill its supervisor', async () => {
    const server = await startServer();
    const sync = jobWritableDir();
    const dataDir = join(server.home, 'agents', 'phoenix');
    const agent = await startAgent(server, { name: 'phoenix', dataDir });
    const r = await cli(
      [
        'launch',
        '--json',
        '--code',
        codeDir({ 'attack.py': ATTACKER }),
        '-E',
        'python3 attack.py',
        '--env',
        `SYNC=${sync}`,
        '--env',
        `STATE_ROOT=${join(dataDir, 'runs')}`,
        '--env',
        `SUPERVISOR_SOCKET=${join(dataDir, 'supervisor', 'v1.sock')}`,
      ],
      server.env,
    );
    if (r.code !== 0) throw new Error(r.output);
    const itemId = (JSON.parse(r.output) as { id: string }).id;
    const runId = await until(async () => (await server.client.getItem(itemId)).run_id ?? undefined);
    await until(async () => ((await outputOf(server.client, runId)).includes('line 5\n') ? true : undefined));
    const pid = Number(readFileSync(join(sync, 'pid'), 'utf8'));

    agent.proc.kill('SIGKILL');
    await agent.proc.exited;
    writeFileSync(join(sync, 'killed'), '');
    await until(() => (alive(pid) ? undefined : true));

    await startAgent(server, { name: 'phoenix', dataDir });
    const item = await until(async () => {
      const cur = await server.client.getItem(itemId);
      return ['finished', 'failed', 'stopped'].includes(cur.state) ? cur : undefined;
    });
    const out = await outputOf(server.client, runId);
    const results = Object.fromEntries(
      [...out.matchAll(/^ATTEMPT (\S+) (.+)$/gm)].map((m) => [m[1] as string, m[2] as string]),
    );
    expect(results).toEqual({
      // Its stdout and stderr are pipes to the supervisor: nothing to truncate.
      'truncate-stdout': 'REFUSED EINVAL',
      'truncate-stderr': 'REFUSED EINVAL',
      'reopen-output': 'DENIED',
      'truncate-output': 'DENIED',
      'write-status': 'DENIED',
      'write-status-tmp': 'DENIED',
      'kill-supervisor': 'DENIED',
      'supervisor-fds': 'DENIED',
      // The supervisor of every job of the agent listens in a 0700 dir of the agent's user.
      'supervisor-socket': 'DENIED',
    });
    // The outcome is the job's real one, and its output arrived whole, exactly once.
    expect(item.state).toBe('failed');
    const run = await server.client.getRun(runId);
    expect(run.exit_code).toBe(5);
    const numbered = out.split('\n').filter((l) => l.startsWith('line '));
    expect(numbered).toEqual(Array.from({ length: 10 }, (_, i) => `line ${i + 1}`));
    expect(out.startsWith('line 1\nline 2\nline 3\nline 4\nline 5\nATTEMPT ')).toBe(true);
  });
});
