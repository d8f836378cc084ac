import { describe, expect, it } from 'vitest';
import { LocalBus } from '../src/bus.js';

/** Starts a wait and reports, after the event loop settled, whether it resolved and with what. */
function waiting(sub: { wait(ms: number): Promise<boolean> }) {
  const state: { done: boolean; woken?: boolean } = { done: false };
  void sub.wait(10_000).then((w) => {
    state.done = true;
    state.woken = w;
  });
  return state;
}
const settle = () => new Promise((r) => setTimeout(r, 0));

describe('LocalBus wake-one dispatch', () => {
  it('a queue publish wakes one waiting poller, the next publish another; other topics wake all', async () => {
    const bus = new LocalBus();
    const subs = [0, 1, 2].map(() => bus.subscribe(['queue:q', 'run:r']));
    let states = subs.map(waiting);
    await settle();
    bus.publish('queue:q');
    await settle();
    expect(states.map((s) => s.done)).toEqual([true, false, false]);
    bus.publish('queue:q');
    await settle();
    expect(states.map((s) => s.done)).toEqual([true, true, false]);

    states = subs.map(waiting);
    await settle();
    bus.publish('run:r');
    await settle();
    expect(states.every((s) => s.done && s.woken)).toBe(true);
    for (const s of subs) s.close();
  });

  it('a woken poller that leaves without waiting again hands the wake to the next one', async () => {
    const bus = new LocalBus();
    const a = bus.subscribe(['queue:q']);
    const b = bus.subscribe(['queue:q']);
    const sa = waiting(a);
    const sb = waiting(b);
    await settle();
    bus.publish('queue:q');
    await settle();
    expect([sa.done, sb.done]).toEqual([true, false]);
    a.close(); // e.g. it claimed an item from another queue, or hung up
    await settle();
    expect(sb).toEqual({ done: true, woken: true });
    b.close();
  });

  it('a woken poller that looked and waited again has used the wake: nobody else is woken when it leaves', async () => {
    const bus = new LocalBus();
    const a = bus.subscribe(['queue:q']);
    const b = bus.subscribe(['queue:q']);
    waiting(a);
    const sb = waiting(b);
    await settle();
    bus.publish('queue:q');
    await settle();
    const again = waiting(a); // found nothing it could claim; waits again
    await settle();
    a.close();
    await settle();
    expect(again).toEqual({ done: true, woken: false });
    expect(sb.done).toBe(false);
    b.close();
  });

  it('a publish while the only poller is busy makes its next wait return at once', async () => {
    const bus = new LocalBus();
    const a = bus.subscribe(['queue:q']);
    bus.publish('queue:q');
    expect(await a.wait(10_000)).toBe(true);
    a.close();
  });
});
