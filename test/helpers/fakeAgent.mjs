// A minimal agent speaking the real protocol through the real client: it registers, claims one item, says so and
// then hangs without ever starting it — the state an agent is in between claim and start. Tests kill -9 it.
import { LiftoffClient } from '@liftoff/core';

const [url, key, id, queue] = process.argv.slice(2);
const client = new LiftoffClient({ baseUrl: url, apiKey: key });
await client.registerAgent({
  id,
  name: id,
  entity: 'default',
  hostname: 'fake-host',
  queues: [queue],
  version: 'fake',
  max_jobs: 1,
});
console.log('registered');
for (;;) {
  const res = await client.poll(id, { queues: [queue], max_items: 1, wait_ms: 30_000 });
  const item = res.items[0];
  if (item) {
    console.log(`claimed ${item.item_id}`);
    break;
  }
}
setInterval(() => void client.heartbeat(id, 'RUNNING', 1).catch(() => undefined), 200);
