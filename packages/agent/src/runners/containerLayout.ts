import { posix } from 'node:path';
import type { Readable } from 'node:stream';
import { RunnerError, type SecurityAllowance } from '@liftoff/core';
import { listCode, packCode } from '../builders/codeTree.js';

/**
 * The filesystem a local-container job sees, defined once (README "Container jobs", docs/security):
 *
 * - code jobs start in a per-run copy of their code (`/app` for images the docker builder generated,
 *   `/mnt/liftoff/code` with the noop builder), put into the container's own writable layer by the agent after the
 *   container is created and before it starts, owned by the uid:gid the container runs as (dirs 0755, files 0644 or
 *   0755). Nothing of the agent's machine is mounted but the run's own output dir: the job cannot reach the agent's
 *   files, and what it writes goes away with the container, except its outputs.
 * - `$LIFTOFF_OUTPUT_DIR` is `/mnt/liftoff/outputs` (CONTAINER_OUTPUT_DIR), the run's own size-capped directory on
 *   the agent's host, bind-mounted and owned by that uid (outputs/outputDir.ts says why it is not a Docker tmpfs).
 * - `HOME` is `/mnt/liftoff/home`, an empty directory owned by that uid, mode 0700 (unless the job's env sets HOME).
 * - jobs with their own Dockerfile and image jobs start in the image's WORKDIR (or `workdir` of the resource args),
 *   as images define their own layout.
 *
 * Putting the copy in with the Engine API's archive upload (instead of a bind mount, or a chown in the Dockerfile)
 * works on a stock Docker 20.10 engine, needs no volume driver, sets ownership per run (so images stay
 * user-independent and the content-hash image cache holds), and never exposes a host directory read-write.
 */
export const CONTAINER_HOME = '/mnt/liftoff/home';

/** Container user when the resource args name none: never the image's own (often root). */
export const DEFAULT_CONTAINER_USER = { uid: 1000, gid: 1000 };

/**
 * Capabilities a container keeps. A non-root job keeps none (it has no effective capabilities anyway, and with
 * `no-new-privileges` cannot gain any through setuid or file capabilities). A container a queue allows to run as
 * root keeps what package managers and ordinary root tooling need; Docker's other defaults (MKNOD, NET_RAW,
 * SYS_CHROOT, AUDIT_WRITE, SETFCAP, SETPCAP) are dropped.
 */
export const ROOT_CAPABILITIES = [
  'CHOWN',
  'DAC_OVERRIDE',
  'FOWNER',
  'FSETID',
  'KILL',
  'SETGID',
  'SETUID',
  'NET_BIND_SERVICE',
];

export interface ContainerUser {
  /** The `User` given at create. */
  spec: string;
  /** Owner of the per-run copy and HOME. */
  uid: number;
  gid: number;
  root: boolean;
}

/**
 * The user a container runs as: the resource args' `user` (numeric `UID[:GID]`; GID defaults to UID, never to the
 * image's group 0), else 1000:1000. uid or gid 0, and user names (which could be uid 0 in the job's image), need the
 * queue's `root` allowance.
 */
export function containerUser(
  user: string | undefined,
  allow: readonly SecurityAllowance[],
  queue: string,
): ContainerUser {
  if (user === undefined) {
    const { uid, gid } = DEFAULT_CONTAINER_USER;
    return { spec: `${uid}:${gid}`, uid, gid, root: false };
  }
  const rootAllowed = allow.includes('root');
  const m = /^(\d+)(?::(\d+))?$/.exec(user);
  if (!m) {
    if (!rootAllowed) {
      throw new RunnerError(
        `resource_args.local-container.user "${user}" is a name, which may be uid 0 in the image; give a numeric UID:GID, or have the queue allow root: liftoff queue update ${queue} --allow root`,
      );
    }
    // A name on a queue that allows root: the copy belongs to root, as the name's uid is unknown before start.
    return { spec: user, uid: 0, gid: 0, root: true };
  }
  const uid = Number(m[1]);
  const gid = Number(m[2] ?? m[1]);
  const root = uid === 0 || gid === 0;
  if (root && !rootAllowed) {
    throw new RunnerError(
      `resource_args.local-container.user "${user}" runs the container as root (uid or gid 0), which queue "${queue}" does not allow. Use another uid, or have the queue allow it: liftoff queue update ${queue} --allow root`,
    );
  }
  return { spec: `${uid}:${gid}`, uid, gid, root };
}

/**
 * The tar the agent uploads into a created container (at "/"): the parents of HOME and of the code copy (root,
 * 0755), HOME (the run's user, 0700) and, for code jobs, the copy of `workDir` at `codeAt` (without what `skip`
 * names).
 */
export async function runFilesystem(
  workDir: string,
  codeAt: string | undefined,
  user: ContainerUser,
  skip?: (rel: string) => boolean,
): Promise<Readable> {
  const owner = { uid: user.uid, gid: user.gid };
  const parents = new Set<string>();
  for (const p of [CONTAINER_HOME, ...(codeAt ? [codeAt] : [])]) {
    const parts = p.split('/').filter(Boolean).slice(0, -1);
    for (let i = 1; i <= parts.length; i++) parents.add(parts.slice(0, i).join('/'));
  }
  const dirs = [
    ...[...parents].map((rel) => ({ rel, uid: 0, gid: 0, mode: 0o755 })),
    { rel: CONTAINER_HOME.slice(1), ...owner, mode: 0o700 },
  ];
  if (!codeAt) return packCode(workDir, [], { ...owner, dirs });
  const entries = await listCode(workDir, skip);
  return packCode(workDir, entries, { ...owner, dirs, prefix: posix.normalize(codeAt).replace(/^\/+/, '') });
}
