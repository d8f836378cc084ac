import type { ClaimedItem, LiftoffClient } from '@liftoff/core';

/** What the sweep suites share (sweeps.test.ts, sweepController.test.ts): an agent by hand and a trial template. */

/** Waits for `check` to hold (a deadline to fail by, never a timing assertion). */
export async function until<T>(what: string, check: () => Promise<T | undefined | false>, ms = 30_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** An agent speaking the protocol by hand: claims trials, starts their runs, prints metric lines, ends them. */
export class FakeAgent {
  private readonly offsets = new Map<string, number>();
  readonly runOf = new Map<string, string>();
  constructor(
    private readonly c: LiftoffClient,
    readonly id: string,
    private readonly queue: string,
  ) {}

  async register(maxJobs: number): Promise<void> {
    await this.c.registerAgent({
      id: this.id,
      name: this.id,
      entity: 'default',
      hostname: 'h',
      queues: [this.queue],
      version: 't',
      max_jobs: maxJobs,
    });
  }

  /** Claims up to `n` items (waiting for the first) and starts each one's run. */
  async take(n: number, waitMs = 3_000): Promise<ClaimedItem[]> {
    const { items } = await this.c.poll(this.id, { queues: [this.queue], max_items: n, wait_ms: waitMs });
    for (const item of items) {
      const run = await this.c.ackItem(item.item_id, this.id);
      await this.c.reportRun(run.id, { agent_id: this.id, state: 'running' });
      this.runOf.set(item.item_id, run.id);
    }
    return items;
  }

  async report(itemId: string, values: readonly number[], key = 'loss'): Promise<void> {
    const runId = this.runOf.get(itemId) ?? '';
    const at = this.offsets.get(runId) ?? 0;
    const text = values.map((v) => `LIFTOFF_METRICS ${JSON.stringify({ [key]: v })}\n`).join('');
    await this.c.appendLogs(runId, this.id, at, text);
    this.offsets.set(runId, at + Buffer.byteLength(text));
  }

  async end(itemId: string, state: 'finished' | 'failed' | 'stopped'): Promise<void> {
    const runId = this.runOf.get(itemId) ?? '';
    await this.c.reportRun(runId, { agent_id: this.id, state, exit_code: state === 'finished' ? 0 : 1 });
  }
}

/** Claims items until `n` have come (each poll takes what is pending then). */
export async function takeAll(agent: FakeAgent, n: number): Promise<ClaimedItem[]> {
  const got: ClaimedItem[] = [];
  await until(`${n} trials`, async () => {
    got.push(...(await agent.take(n - got.length, 200)));
    return got.length >= n;
  });
  return got;
}

export const GIT_TRIAL = {
  spec: { source: { type: 'git' as const, url: 'https://git.example.com/x.git' }, entry_point: ['true'] },
};
