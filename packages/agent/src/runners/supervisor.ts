/**
 * The supervisor of one local-process job: a small node process the agent starts detached (a session of its own, no
 * shell), which outlives the agent. It runs as the agent's user and starts the job exactly as the agent used to
 * (argv, the job's env, cwd, uid and gid, a process group of its own), copies the job's stdout and stderr from pipes
 * into the run's output file, and when the job has ended writes its exit status to the state dir, where the job
 * cannot write. A restarted agent reads both (localProcess.ts), so a crash of the agent loses neither the job, nor
 * its output, nor its outcome.
 *
 * Protocol: the request (SupervisorRequest, JSON) arrives on stdin; the supervisor answers one line on stdout,
 * `{"pid":…}` once the job runs or `{"error":…}` when it could not start, and never writes to stdout again (the agent
 * may be gone by then). Its stderr is the state dir's supervisor.log.
 */
import { spawn } from 'node:child_process';
import { closeSync, fsyncSync, openSync, writeSync } from 'node:fs';
import {
  killGroup,
  processStat,
  supervisorPath,
  writeFileAtomic,
  type ExitStatus,
  type SupervisorRequest,
} from './supervisorFiles.js';

/** Signals the supervisor passes on to the job's process group: a host shutting down stops the job, not its record. */
const FORWARDED: NodeJS.Signals[] = ['SIGTERM', 'SIGINT', 'SIGHUP'];

async function readRequest(): Promise<SupervisorRequest> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return JSON.parse(Buffer.concat(chunks).toString('utf8')) as SupervisorRequest;
}

function answer(message: { pid: number } | { error: string }): void {
  // The agent reads one line and lets go of the pipe; if it died meanwhile, the write fails and that is fine.
  process.stdout.on('error', () => undefined);
  process.stdout.end(`${JSON.stringify(message)}\n`);
}

function writeAll(fd: number, data: Buffer): void {
  for (let at = 0; at < data.length;) at += writeSync(fd, data, at);
}

async function main(): Promise<void> {
  const req = await readRequest();
  const { dir } = req;
  // O_EXCL: the file is new for this run; nothing that was there before (a leftover, a link) is ever written through.
  const out = openSync(supervisorPath(dir, 'output'), 'ax', 0o600);
  let outputError: string | undefined;
  let startError: string | undefined;
  let jobPid: number | undefined;
  const pendingSignals: NodeJS.Signals[] = [];
  for (const sig of FORWARDED) {
    process.on(sig, () => (jobPid === undefined ? pendingSignals.push(sig) : killGroup(jobPid, sig)));
  }

  const child = spawn(req.program, req.args, {
    cwd: req.cwd,
    env: req.env,
    // A process group of its own, so that cancelling stops the job's children too. With a user of its own, libuv
    // sets the gid, drops every supplementary group (setgroups(0, NULL)) and sets the uid before exec.
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(req.uid !== undefined && req.gid !== undefined ? { uid: req.uid, gid: req.gid } : {}),
  });
  const finish = (status: ExitStatus): never => {
    try {
      fsyncSync(out);
      closeSync(out);
    } catch {
      // The output is as complete as the disk allowed; the status says why if writing failed.
    }
    try {
      writeFileAtomic(supervisorPath(dir, 'status'), JSON.stringify(status));
    } catch (err) {
      // The state dir is gone: the agent swept this run as ended; nobody waits for the status.
      process.stderr.write(`could not write the exit status: ${(err as Error).message}\n`);
    }
    process.exit(0);
  };

  child.once('error', (err) => {
    // Only a failed spawn emits "error" before "spawn"; afterwards the job runs and "close" ends it.
    if (jobPid !== undefined) return;
    const error = err.message;
    answer({ error });
    finish({ code: null, signal: null, error });
  });
  for (const stream of [child.stdout, child.stderr]) {
    stream.on('data', (chunk: Buffer) => {
      if (outputError) return; // Keep draining the pipe so the job is never blocked on a full disk.
      try {
        writeAll(out, chunk);
      } catch (err) {
        outputError = (err as Error).message;
      }
    });
  }
  child.once('spawn', () => {
    const pid = child.pid as number;
    jobPid = pid;
    try {
      // Read now, while the job cannot have been reaped yet (that happens after this handler): a job that exited
      // at once is a zombie with its start time still there.
      const job = processStat(pid);
      const self = processStat(process.pid);
      if (!job || !self) throw new Error('/proc has no entry for the job or the supervisor');
      writeFileAtomic(
        supervisorPath(dir, 'process'),
        JSON.stringify({ supervisor: { pid: process.pid, start: self.start }, job: { pid, start: job.start } }),
      );
    } catch (err) {
      // Without the record a restarted agent could neither find nor stop the job: it does not run at all.
      killGroup(pid, 'SIGKILL');
      startError = `could not record the job's process: ${(err as Error).message}`;
      answer({ error: startError });
      return;
    }
    for (const sig of pendingSignals) killGroup(pid, sig);
    answer({ pid });
  });
  // "close": the leader has exited and every holder of its stdout/stderr is gone, so the output is complete.
  child.once('close', (code, signal) => {
    // Children the leader left behind in its group belong to the run and go with it (as before the supervisor).
    if (jobPid !== undefined) killGroup(jobPid, 'SIGKILL');
    finish({
      code: startError ? null : code,
      signal: startError ? null : signal,
      ...(startError ? { error: startError } : {}),
      ...(outputError ? { outputError } : {}),
    });
  });
}

main().catch((err: unknown) => {
  process.stderr.write(`supervisor failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(70);
});
