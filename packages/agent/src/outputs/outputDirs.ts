import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, lstatSync, statSync, writeFileSync } from 'node:fs';
import { readdir, readFile, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { outputDirOf, removeOutputDir } from './outputDir.js';

/** The record, in a run's agent-owned state dir, of which output dir its job writes to. */
const RECORD = 'output-dir';
const SLOT_NAME = /^slot-[0-9a-f]{16}$/;
/** How long an emptied slot waits for the next run before it is unmounted. */
const IDLE_MS = 60_000;
/** A slot holding more entries than this after a run is unmounted rather than emptied entry by entry. */
const EMPTY_BUDGET = 2_000;

/**
 * Which output dir each run's job writes to (docs/outputs.md). A root agent keeps the size-capped tmpfs of an ended
 * run mounted, emptied, and hands it to the next run: mounting and unmounting cost two spawned programs per run
 * (`mount`, `umount`; node has no mount(2)), which profiled as half of the agent's work on trivial jobs. A slot is
 * reused only once the run's processes are gone (its uid swept, its container removed), its outputs collected, and
 * it is empty again: a tmpfs holds nothing but what was written into it (hard links cannot cross into it), so an
 * emptied one carries nothing over. A slot that cannot be emptied, or holds too many entries to empty cheaply, is
 * unmounted instead. Its owner is set for each run by prepareOutputDir (outputDir.ts).
 *
 * A non-root agent cannot mount: each run gets a plain dir of its own, `job-outputs/<run id>`, as before.
 */
export class OutputDirs {
  private readonly idle: string[] = [];
  private readonly byRun = new Map<string, string>();

  constructor(
    private readonly dataDir: string,
    private readonly pooled: boolean = process.getuid?.() === 0,
  ) {}

  private get root(): string {
    return join(this.dataDir, 'job-outputs');
  }

  /**
   * The dir for a new run, recorded in `stateDir`: an idle slot (`reused`: still mounted, emptied, root's and 0700,
   * which no job user can reach behind the 0711 parent), or a fresh one prepareOutputDir will mount.
   */
  async assign(runId: string, stateDir: string): Promise<{ path: string; reused: boolean }> {
    if (!this.pooled) return { path: outputDirOf(this.dataDir, runId), reused: false };
    const idle = this.idle.pop();
    const dir = idle ?? join(this.root, `slot-${randomBytes(8).toString('hex')}`);
    this.byRun.set(runId, dir);
    // Synchronous, as runState.ts writes a run's other records (one small file; an async call cost more CPU).
    writeFileSync(join(stateDir, RECORD), dir.slice(this.root.length + 1), { mode: 0o600 });
    return { path: dir, reused: idle !== undefined };
  }

  /** The run's dir: the one it was assigned (also before a restart, from its record), else the per-run path. */
  async pathOf(runId: string, stateDir?: string): Promise<string> {
    const known = this.byRun.get(runId);
    if (known) return known;
    if (stateDir) {
      const name = (await readFile(join(stateDir, RECORD), 'utf8').catch(() => '')).trim();
      if (SLOT_NAME.test(name)) {
        const dir = join(this.root, name);
        this.byRun.set(runId, dir);
        return dir;
      }
    }
    return outputDirOf(this.dataDir, runId);
  }

  /**
   * After the run's outputs were collected: an emptied slot goes back to the pool, anything else is unmounted and
   * removed. Never throws (a dir it cannot remove is left, as removeOutputDir leaves it).
   */
  async release(runId: string, stateDir?: string): Promise<void> {
    const dir = await this.pathOf(runId, stateDir);
    this.byRun.delete(runId);
    if (this.pooled && SLOT_NAME.test(dir.slice(this.root.length + 1)) && (await emptied(dir))) {
      this.idle.push(dir);
      // A slot idle this long is unmounted: an agent between bursts keeps none, and one killed outright (SIGKILL,
      // no close) leaves at most the slots of the last minute's runs for its next start to sweep.
      setTimeout(() => {
        const at = this.idle.indexOf(dir);
        if (at < 0) return;
        this.idle.splice(at, 1);
        void removeOutputDir(dir);
      }, IDLE_MS).unref();
      return;
    }
    await removeOutputDir(dir);
  }

  /** When the agent stops (its runs ended): the idle slots are unmounted, so none outlives the agent. */
  async close(): Promise<void> {
    for (const dir of this.idle.splice(0)) await removeOutputDir(dir);
  }

  /**
   * At start-up, after the run records of runs no longer this agent's were swept (runState.ts): every slot left by
   * an earlier process that no held run (`heldStateDirs`) records is unmounted and removed.
   */
  async sweep(heldStateDirs: ReadonlyMap<string, string>): Promise<void> {
    if (!this.pooled) return;
    const kept = new Set<string>();
    for (const [runId, stateDir] of heldStateDirs) kept.add(await this.pathOf(runId, stateDir));
    const names = await readdir(this.root).catch(() => [] as string[]);
    for (const name of names) {
      const dir = join(this.root, name);
      if (SLOT_NAME.test(name) && !kept.has(dir) && !this.idle.includes(dir)) await removeOutputDir(dir);
    }
  }
}

/**
 * Empties a slot for the next run: true only when it is a mounted tmpfs that is empty afterwards, back to root and
 * 0700. Entries are removed without following links (rm never does); the count is bounded first, so a run that
 * left a million files costs one unmount instead of a million unlinks.
 */
async function emptied(dir: string): Promise<boolean> {
  try {
    // The checks and the hand-back are synchronous calls (each async one cost about three times the CPU of the call,
    // for every run); emptying what a run left, of any size, stays async.
    const own = lstatSync(dir);
    if (!own.isDirectory() || own.dev === statSync(dirname(dir)).dev) return false;
    // Most runs leave nothing (their outputs are uploaded from the slot, not moved out of it): one listing then.
    const top = await readdir(dir);
    if (top.length) {
      if ((await countEntries(dir, EMPTY_BUDGET)) > EMPTY_BUDGET) return false;
      for (const name of top) await rm(join(dir, name), { recursive: true, force: true });
      if ((await readdir(dir)).length) return false;
    }
    chownSync(dir, 0, 0);
    chmodSync(dir, 0o700);
    return true;
  } catch {
    return false;
  }
}

/** Entries under `dir`, counted without following links, stopping once past `limit`. */
async function countEntries(dir: string, limit: number): Promise<number> {
  let n = 0;
  const stack = [dir];
  while (stack.length && n <= limit) {
    const d = stack.pop() as string;
    for (const e of await readdir(d, { withFileTypes: true })) {
      n++;
      if (e.isDirectory()) stack.push(join(d, e.name));
    }
  }
  return n;
}
