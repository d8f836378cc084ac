// Idle fleet cost: server CPU and memory with 1,000 idle agents, and requests per agent per minute. The agents are
// the real protocol client (register, heartbeat, long-poll) run as 1,000 independent loops in one process: 1,000
// agent processes would not fit the machine, and the server cannot tell the difference.
import { LiftoffClient } from '@liftoff/core';
import { procStats, sampleProcess, sleep, startServer, registerProtocolAgent } from './lib.mjs';

export default {
  name: 'idle',
  title: 'Idle fleet cost',
  async run({ quick }) {
    const agents = quick ? 20 : 1000;
    const windowMs = quick ? 5_000 : 60_000;
    const server = await startServer();
    const idleServer = procStats(server.pid);
    const client = new LiftoffClient({ baseUrl: server.url, apiKey: server.env.LIFTOFF_API_KEY, timeoutMs: 120_000 });
    let requests = 0;
    let stopping = false;
    const loops = [];
    for (let i = 0; i < agents; i++) {
      const id = `idle-${i}`;
      const reg = await registerProtocolAgent(client, id);
      loops.push(
        (async () => {
          let lastContact = Date.now();
          const beat = setInterval(() => {
            if (Date.now() - lastContact >= reg.heartbeat_interval_ms) {
              requests++;
              void client.heartbeat(id, 'POLLING', 0).catch(() => undefined);
            }
          }, reg.heartbeat_interval_ms);
          while (!stopping) {
            requests++;
            lastContact = Date.now();
            await client
              .poll(id, { queues: ['default'], max_items: 1, wait_ms: reg.poll_timeout_ms })
              .catch(() => sleep(1_000));
            lastContact = Date.now();
          }
          clearInterval(beat);
        })(),
      );
    }
    await sleep(5_000);
    const before = requests;
    const usage = await sampleProcess(server.pid, windowMs);
    const perAgentPerMinute = ((requests - before) / agents) * (60_000 / windowMs);
    stopping = true;
    const rows = [
      [
        `Liftoff server, ${agents} idle agents long-polling`,
        `${(usage.cpuCores * 100).toFixed(1)} % of a core`,
        `${usage.rssMb.toFixed(0)} MB (idle server: ${idleServer.rssMb.toFixed(0)} MB)`,
        `${perAgentPerMinute.toFixed(1)} / min`,
      ],
      ['an agent polling every 10 s (W&B Launch, Prefect)', '-', '-', '6 / min (by construction)'],
    ];
    return {
      tables: [
        {
          title: 'Idle fleet cost',
          how: `${agents} agents registered and idle (long-poll held up to the server's poll timeout, heartbeats as the real agent sends them), after a 5 s settle; server CPU and RSS read from /proc over ${windowMs / 1000} s; requests counted at the clients.`,
          columns: ['what', 'server CPU', 'server RSS', 'requests per agent'],
          rows,
          notes: [
            `Requests per idle agent per minute: ${perAgentPerMinute.toFixed(1)} vs 6 for a 10 s poller (${(perAgentPerMinute / 6).toFixed(2)}×).`,
          ],
        },
      ],
      charts: [],
      json: {
        agents,
        windowMs,
        cpuCores: usage.cpuCores,
        rssMb: usage.rssMb,
        idleServerRssMb: idleServer.rssMb,
        perAgentPerMinute,
      },
    };
  },
};
