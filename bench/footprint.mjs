// Agent footprint: RSS and CPU of one agent process when idle and while it supervises 100 concurrent local jobs.
import { packDirectory } from '@liftoff/cli';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { sampleProcess, sleep, startAgent, startServer, tempDir } from './lib.mjs';

export default {
  name: 'footprint',
  title: 'Agent footprint',
  async run({ quick }) {
    const jobs = quick ? 5 : 100;
    const server = await startServer();
    const agent = await startAgent(server, { maxJobs: jobs });
    await sleep(2_000);
    const idle = await sampleProcess(agent.pid, quick ? 3_000 : 20_000);
    const dir = join(tempDir(), 'code');
    mkdirSync(dir);
    writeFileSync(join(dir, 'job.sh'), 'i=0; while [ $i -lt 20 ]; do echo "tick $i"; i=$((i+1)); sleep 1; done\n');
    const archive = await server.client.uploadArchive(await packDirectory(dir));
    for (let i = 0; i < jobs; i++) {
      await server.client.push('default', 'default', {
        spec: { source: { type: 'code', archive_id: archive.id }, entry_point: ['sh', 'job.sh'] },
      });
    }
    while ((await server.client.getQueue('default', 'default')).pending > 0) await sleep(200);
    await sleep(2_000);
    const busy = await sampleProcess(agent.pid, quick ? 3_000 : 10_000);
    return {
      tables: [
        {
          title: 'Agent footprint',
          how: `One \`liftoff launch-agent\` process with max_jobs ${jobs}; CPU and RSS from /proc over 20 s idle, then over 10 s while ${jobs} local-process jobs each print a line a second (their output streamed to the server).`,
          columns: ['state', 'agent CPU', 'agent RSS (peak)'],
          rows: [
            [
              'idle (parked in its long-poll)',
              `${(idle.cpuCores * 100).toFixed(2)} % of a core`,
              `${idle.rssMb.toFixed(0)} MB (${idle.peakRssMb.toFixed(0)} MB)`,
            ],
            [
              `supervising ${jobs} running jobs`,
              `${(busy.cpuCores * 100).toFixed(1)} % of a core`,
              `${busy.rssMb.toFixed(0)} MB (${busy.peakRssMb.toFixed(0)} MB)`,
            ],
          ],
          notes: [],
        },
      ],
      charts: [],
      json: { idle, busy, jobs },
    };
  },
};
