import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { HeartbeatPacer, type AgentState } from '../src/heartbeatPacer.js';

/** A pacer over a state the test sets, recording what it sends and when (fake time, from 0). */
function pacer(everyMs = 1_000) {
  let state: AgentState = { status: 'POLLING', jobs: 0 };
  const sent: Array<[number, AgentState]> = [];
  const p = new HeartbeatPacer(
    () => state,
    (s) => sent.push([Date.now(), s]),
    { everyMs },
  );
  p.told(state);
  const set = (jobs: number) => {
    state = { status: jobs ? 'RUNNING' : 'POLLING', jobs };
    p.changed();
  };
  return { p, sent, set };
}

describe('heartbeat pacing', () => {
  beforeEach(() => {
    vi.useFakeTimers({ now: 0 });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('tells a change of status at once', () => {
    const { sent, set } = pacer();
    set(1);
    expect(sent).toEqual([[0, { status: 'RUNNING', jobs: 1 }]]);
    vi.advanceTimersByTime(10);
    set(0);
    expect(sent.at(-1)).toEqual([10, { status: 'POLLING', jobs: 0 }]);
  });

  it('tells new job counts within a window once, at its end, with the last count', () => {
    const { sent, set } = pacer();
    set(1);
    for (let jobs = 2; jobs <= 50; jobs++) {
      vi.advanceTimersByTime(10);
      set(jobs);
    }
    // 490 ms in: only the status change went.
    expect(sent).toHaveLength(1);
    vi.advanceTimersByTime(509);
    expect(sent).toHaveLength(1);
    vi.advanceTimersByTime(1);
    expect(sent).toEqual([
      [0, { status: 'RUNNING', jobs: 1 }],
      [1_000, { status: 'RUNNING', jobs: 50 }],
    ]);
  });

  it('tells a new count at once when the last heartbeat is a window old', () => {
    const { sent, set } = pacer();
    set(1);
    vi.advanceTimersByTime(1_000);
    set(2);
    expect(sent.at(-1)).toEqual([1_000, { status: 'RUNNING', jobs: 2 }]);
  });

  it('sends nothing at the end of a window whose count came back to the one told', () => {
    const { sent, set } = pacer();
    set(1);
    vi.advanceTimersByTime(100);
    set(2);
    set(1);
    vi.advanceTimersByTime(5_000);
    expect(sent).toHaveLength(1);
  });

  it('lets a status change overtake a waiting count, and the window start again from it', () => {
    const { sent, set } = pacer();
    set(1);
    vi.advanceTimersByTime(100);
    set(3);
    vi.advanceTimersByTime(100);
    set(0);
    expect(sent.at(-1)).toEqual([200, { status: 'POLLING', jobs: 0 }]);
    vi.advanceTimersByTime(5_000);
    expect(sent).toHaveLength(2);
  });

  it('sends when asked whatever was sent last (the liveness timer), and nothing once closed', () => {
    const { p, sent, set } = pacer();
    p.sendNow();
    expect(sent).toEqual([[0, { status: 'POLLING', jobs: 0 }]]);
    set(1);
    vi.advanceTimersByTime(100);
    set(2);
    p.close();
    vi.advanceTimersByTime(5_000);
    set(0);
    p.sendNow();
    expect(sent).toHaveLength(2);
  });
});
