/**
 * The supervisor of an agent's local-process jobs: one long-lived node process per agent data dir, which the agent
 * starts detached (a session of its own, no shell, an empty environment) when it first needs it, and which outlives
 * the agent. It runs as the agent's user and starts each job exactly as the agent used to (argv, the job's env, cwd,
 * uid and gid, a process group of its own), copies the job's stdout and stderr from pipes into the run's output file,
 * and when the job has ended writes its exit status to the run's state dir, where the job cannot write. A restarted
 * agent reads both (localProcess.ts) and reconnects to the supervisor, so a crash of the agent loses neither the
 * job, nor its output, nor its outcome.
 *
 * Why one per data dir rather than one per job (as before): a node process costs ~50 ms of CPU to start and ~40 MB
 * resident, which for a short job was most of the job (docs/agent-restarts.md, bench/RESULTS.md). Shared, a start
 * is one message on a socket and a fork of a small process. What sharing costs: a supervisor killed from outside
 * takes the records of every running job of the agent with it (their runs fail, as one job's did before), and the
 * supervisor must stay up between jobs while its agent is connected.
 *
 * Protocol (newline-delimited JSON on `<data-dir>/supervisor/v1.sock`, in a 0700 dir of the agent's user, so only
 * that user can connect: a job under a uid of its own cannot reach it):
 *   agent → supervisor: `{"id":n,"start":SupervisorRequest}`
 *   supervisor → agent: `{"id":n,"pid":…}` once the job runs and its process record is written, or `{"id":n,
 *   "error":…}`; and to every connected agent `{"ended":"<state dir>"}` once a job's status is written.
 * On start it prints one line on stdout, `ready` once it listens (or another supervisor already does), and closes
 * stdout. Its stderr is `<data-dir>/supervisor/supervisor.log`. It exits once it has neither jobs nor agents.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, closeSync, openSync, unlinkSync, write } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { JobCgroups } from './jobCgroups.js';
import {
  SUPERVISOR_SOCKET,
  fsyncOf,
  isKillAllRequest,
  isSupervisorRequest,
  killGroup,
  killAllCommand,
  whenGroupEmpty,
  processStat,
  supervisorPath,
  writeFileAtomic,
  type ExitStatus,
  type KillAllRequest,
  type ProcessId,
  type SupervisorRequest,
} from './supervisorFiles.js';

/** Signals passed on to every job's process group: a host shutting down stops the jobs, not their records. */
const FORWARDED: NodeJS.Signals[] = ['SIGTERM', 'SIGINT', 'SIGHUP'];
/** Output waiting to be written per job before its pipes are paused. */
const OUTPUT_QUEUE_MAX = 1024 * 1024;
/** An agent that started the supervisor connects within this, or the supervisor, idle, ends. */
const FIRST_CLIENT_MS = 30_000;

const home = process.argv[2];
const self = processStat(process.pid);
/** Running jobs by process group, for signals passed on. */
const jobs = new Map<number, string>();
/** Jobs being started (before their pid is known) count as running for the idle check. */
let starting = 0;
const clients = new Set<Socket>();
let stopping = false;
/** Whether any agent has connected yet. */
let served = false;
/** Where jobs under another uid get a cgroup of their own (jobCgroups.ts); detected in main(). */
let cgroups: JobCgroups | undefined;
const selfUid = process.getuid?.() ?? 0;

function log(line: string): void {
  process.stderr.write(`${new Date().toISOString()} ${line}\n`);
}

function broadcast(message: object): void {
  const line = `${JSON.stringify(message)}\n`;
  for (const c of clients) if (c.writable) c.write(line);
}

/** Ends the supervisor once nothing needs it: no job to record, no agent to serve (or the host is shutting down). */
function maybeExit(): void {
  if (jobs.size || starting) return;
  if (!stopping && clients.size) return;
  server.close();
  for (const c of clients) c.destroy();
  // server.close() unlinks the socket; nothing else is pending that must be written.
  process.exit(0);
}

/** Writes `chunk` from `at` on to the output file; the bytes written (the disk may be slow: never synchronous). */
const writeAt = (fd: number, chunk: Buffer, at: number): Promise<number> =>
  new Promise((resolve, reject) =>
    write(fd, chunk, at, chunk.length - at, null, (err, n) => (err ? reject(err) : resolve(n))),
  );

/** Starts one job; `answer` is called once with its pid or why it could not start. */
function startJob(req: SupervisorRequest, me: ProcessId, answer: (m: { pid: number } | { error: string }) => void) {
  const { dir } = req;
  starting++;
  /** The output file's descriptor. */
  let out: number | undefined;
  let outputError: string | undefined;
  let startError: string | undefined;
  let jobPid: number | undefined;
  /** The job's own cgroup, when it has one: ended (everything in it killed) before the status is written. */
  let cgroup: string | undefined;
  let ending: Promise<boolean> | undefined;
  /** Ends the job's cgroup once, whoever asks first; true when it was emptied and removed. */
  const endCgroup = () => (ending ??= cgroup && cgroups ? cgroups.end(cgroup) : Promise.resolve(false));
  // Writes to the output file are queued in order on one promise chain. While more than OUTPUT_QUEUE_MAX bytes wait
  // (a disk slower than the job prints), the job's pipes are paused: the job then blocks on a full pipe, as it did
  // under a supervisor of its own, instead of the supervisor's memory growing for every job it serves.
  let writes: Promise<void> = Promise.resolve();
  let queued = 0;
  const streams: Array<NodeJS.ReadableStream | null> = [];
  const append = (chunk: Buffer) => {
    queued += chunk.length;
    if (queued > OUTPUT_QUEUE_MAX) for (const s of streams) s?.pause();
    writes = writes.then(async () => {
      try {
        // After a write failed, the rest is read and dropped so that the job is never blocked on a full disk.
        if (!outputError && out !== undefined) {
          for (let at = 0; at < chunk.length;) at += await writeAt(out, chunk, at);
        }
      } catch (err) {
        outputError = (err as Error).message;
      }
      queued -= chunk.length;
      if (queued <= OUTPUT_QUEUE_MAX / 4) for (const s of streams) s?.resume();
    });
  };
  const finish = async (status: ExitStatus) => {
    await writes;
    try {
      // Taken first: a descriptor number is reused once closed, so nothing may write to or close this one again.
      const fd = out;
      out = undefined;
      if (fd !== undefined) {
        try {
          await fsyncOf(fd);
        } finally {
          closeSync(fd);
        }
      }
    } catch {
      // The output is as complete as the disk allowed; the status says why if writing failed.
    }
    try {
      await writeFileAtomic(supervisorPath(dir, 'status'), JSON.stringify(status), true);
    } catch (err) {
      // The state dir is gone: the agent swept this run as ended; nobody waits for the status.
      log(`${dir}: could not write the exit status: ${(err as Error).message}`);
    }
    if (jobPid !== undefined) jobs.delete(jobPid);
    broadcast({ ended: dir });
    maybeExit();
  };
  const fail = (error: string) => {
    starting--;
    answer({ error });
    void endCgroup().then(() => finish({ code: null, signal: null, error }));
  };

  void (async () => {
    try {
      // O_EXCL: the file is new for this run; nothing that was there before (a leftover, a link) is written through.
      // Opened synchronously (once per job, a page-cache call; the async open cost more CPU than the call).
      out = openSync(supervisorPath(dir, 'output'), 'ax', 0o600);
    } catch (err) {
      // Not even the status can be trusted to this dir: say why and write nothing there.
      starting--;
      answer({ error: `could not create the output file: ${(err as Error).message}` });
      maybeExit();
      return;
    }
    if (stopping) return fail('the supervisor is shutting down (the host is stopping)');
    let child: ChildProcess;
    const launch = () =>
      spawn(req.program, req.args, {
        cwd: req.cwd,
        env: req.env,
        // A process group of its own, so that cancelling stops the job's children too. With a user of its own, libuv
        // sets the gid, drops every supplementary group (setgroups(0, NULL)) and sets the uid before exec. No shell.
        detached: true,
        stdio: ['ignore', 'pipe', 'pipe'],
        ...(req.uid !== undefined && req.gid !== undefined ? { uid: req.uid, gid: req.gid } : {}),
      });
    try {
      // Only a job under another uid: one running as the supervisor's own user could move itself out again.
      if (cgroups && req.uid !== undefined && req.uid !== selfUid) {
        const placed = cgroups.spawnInside(launch);
        child = placed.result;
        cgroup = placed.cgroup;
      } else {
        child = launch();
      }
    } catch (err) {
      // Thrown (not emitted) for arguments node refuses outright: this job fails, the supervisor serves on.
      return fail((err as Error).message);
    }
    child.once('error', (err) => {
      // Only a failed spawn emits "error" before "spawn"; afterwards the job runs and "close" ends it.
      if (jobPid === undefined) fail(err.message);
    });
    streams.push(child.stdout, child.stderr);
    child.stdout?.on('data', append);
    child.stderr?.on('data', append);
    child.once('spawn', () => {
      const pid = child.pid as number;
      jobPid = pid;
      jobs.set(pid, dir);
      starting--;
      if (stopping) killGroup(pid, 'SIGTERM');
      // Read now, while the job cannot have been reaped yet (that happens after this handler): a job that exited at
      // once is a zombie with its start time still there.
      const job = processStat(pid);
      const record = job && { supervisor: me, job: { pid, start: job.start } };
      // Not fsynced: the record serves an agent restarted while the host runs; after a host crash its job is gone
      // and an empty or missing record reads as "never started", which fails the run just the same.
      void (
        record
          ? writeFileAtomic(supervisorPath(dir, 'process'), JSON.stringify(record), false)
          : Promise.reject(new Error('/proc has no entry for the job'))
      )
        .then(() => answer({ pid }))
        .catch((err: unknown) => {
          // Without the record a restarted agent could neither find nor stop the job: it does not run at all.
          killGroup(pid, 'SIGKILL');
          startError = `could not record the job's process: ${(err as Error).message}`;
          answer({ error: startError });
        });
    });
    let stopWatching: (() => void) | undefined;
    child.once('exit', () => {
      if (jobPid === undefined) return;
      // Whatever still holds the job's output once the leader and its whole group are gone left the group (a daemon
      // in a session of its own): a leftover of the run, which would otherwise keep the run going, a cancelled one
      // included, for as long as it lives. It is ended as the run's end would end it.
      // Without a cgroup, kill(-1) as the uid, checked as a kill request is: never as root or as the supervisor.
      const asUid = { uid: req.uid, gid: req.gid };
      stopWatching = whenGroupEmpty(jobPid, () => {
        if (cgroup) void endCgroup();
        else if (req.uidOfItsOwn && isKillAllRequest(asUid, selfUid)) killAllAs(asUid, () => undefined);
      });
    });
    // "close": the leader has exited and every holder of its stdout/stderr is gone, so the output is complete.
    child.once('close', (code, signal) => {
      stopWatching?.();
      if (jobPid === undefined) return; // A failed spawn; "error" finished it.
      // Children the leader left behind in its group belong to the run and go with it; in a cgroup of its own,
      // so does every other process of the job (one that left the group, one that changed uid).
      killGroup(jobPid, 'SIGKILL');
      void endCgroup().then((contained) =>
        finish({
          code: startError ? null : code,
          signal: startError ? null : signal,
          ...(startError ? { error: startError } : {}),
          ...(outputError ? { outputError } : {}),
          ...(contained ? { contained: true } : {}),
        }),
      );
    });
  })().catch((err: unknown) => {
    // A bug here must not end the supervisor, and with it the records of every other job it serves.
    log(`${dir}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  });
}

/**
 * Makes kill(-1, SIGKILL) as a run's own uid (jobUsers.ts killAllAs says why that reaches every process of it). Done
 * here rather than by the agent because a spawn forks the spawning process: this one is a fraction of the agent's
 * size, and a fork costs about a millisecond per 30 MB resident.
 */
function killAllAs(req: KillAllRequest, answer: (m: { done: true } | { error: string }) => void): void {
  const [program, ...args] = killAllCommand;
  let answered = false;
  const once = (m: { done: true } | { error: string }) => {
    if (!answered) answer(m);
    answered = true;
  };
  try {
    const child = spawn(program as string, args, {
      uid: req.uid,
      gid: req.gid,
      stdio: 'ignore',
      cwd: '/',
      env: { PATH: '/usr/bin:/bin' },
    });
    child.once('error', (err) => once({ error: err.message }));
    child.once('exit', () => once({ done: true }));
  } catch (err) {
    once({ error: (err as Error).message });
  }
}

function serve(socket: Socket, me: ProcessId): void {
  if (stopping) {
    socket.destroy();
    return;
  }
  clients.add(socket);
  served = true;
  socket.on('error', () => undefined);
  socket.once('close', () => {
    clients.delete(socket);
    maybeExit();
  });
  const reply = (m: object) => {
    if (socket.writable) socket.write(`${JSON.stringify(m)}\n`);
  };
  // Only the agent's user can connect (see above), so a line is trusted as much as the agent; it is still checked.
  createInterface({ input: socket, crlfDelay: Infinity }).on('line', (line) => {
    let msg: { id?: unknown; start?: unknown; killAll?: unknown };
    try {
      msg = JSON.parse(line) as typeof msg;
    } catch {
      log('dropped a line that is not JSON');
      return;
    }
    const id = msg.id;
    if (!Number.isSafeInteger(id)) return;
    if (msg.killAll !== undefined) {
      if (!isKillAllRequest(msg.killAll, selfUid)) return reply({ id, error: 'malformed kill request' });
      return killAllAs(msg.killAll, (m) => reply({ id, ...m }));
    }
    if (!isSupervisorRequest(msg.start)) return reply({ id, error: 'malformed start request' });
    startJob(msg.start, me, (m) => reply({ id, ...m }));
  });
}

/** Listens, or finds that another supervisor of this data dir already does (then that one serves). */
function listen(path: string): Promise<'listening' | 'taken'> {
  return new Promise((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      if (err.code !== 'EADDRINUSE') return reject(err);
      const probe = connect(path);
      probe.once('connect', () => {
        probe.destroy();
        resolve('taken');
      });
      probe.once('error', () => {
        // A socket file left by a supervisor that was killed: nobody listens on it.
        try {
          unlinkSync(path);
        } catch (e) {
          return reject(e as Error);
        }
        listen(path).then(resolve, reject);
      });
    });
    server.listen(path, () => resolve('listening'));
  });
}

const server = createServer();

async function main(): Promise<void> {
  if (!home || !self) throw new Error('usage: supervisor.js <supervisor dir>');
  const me: ProcessId = { pid: process.pid, start: self.start };
  const detected = JobCgroups.detect(process.pid);
  cgroups = detected.cgroups;
  for (const sig of FORWARDED) {
    process.on(sig, () => {
      stopping = true;
      log(`${sig}: passing it on to ${jobs.size} job(s)`);
      for (const pid of jobs.keys()) killGroup(pid, sig);
      maybeExit();
    });
  }
  const path = join(home, SUPERVISOR_SOCKET);
  const state = await listen(path);
  if (state === 'taken') {
    process.stdout.end('ready\n');
    process.exit(0);
  }
  // Belt and braces: the dir already keeps everyone but the agent's user out.
  chmodSync(path, 0o600);
  server.on('connection', (socket) => serve(socket, me));
  process.stdout.on('error', () => undefined);
  process.stdout.end('ready\n');
  // Only for an agent that never came: afterwards the supervisor ends when its last agent and job are gone.
  setTimeout(() => served || maybeExit(), FIRST_CLIENT_MS).unref();
  log(`supervisor ${process.pid} listening`);
  log(
    cgroups
      ? `jobs under another uid get a cgroup of their own below ${cgroups.home}`
      : `jobs get no cgroup of their own (${detected.why}); a run's leftovers are ended by kill(-1) as its uid`,
  );
}

main().catch((err: unknown) => {
  log(`supervisor failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  process.exit(70);
});
