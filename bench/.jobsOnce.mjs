import { jobsPerSecond } from './throughput.mjs';
import { cleanup } from './lib.mjs';
const db = process.argv[2] === 'pg' ? 'postgres://liftoff:liftoff@127.0.0.1:5432/liftoff' : undefined;
console.log(JSON.stringify(await jobsPerSecond({ database: db, agents: 10, maxJobs: 8, jobs: Number(process.argv[3] ?? 400) })));
await cleanup(); process.exit(0);
