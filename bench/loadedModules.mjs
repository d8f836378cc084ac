// Records every module a process loads, for the footprint benchmark and the test that keeps light commands light:
// `node --import ./bench/loadedModules.mjs ...` with LIFTOFF_MODULE_LOG=<file> appends one URL or path a line.
// ES modules are seen by a `load` hook (it runs in Node's loader thread); CommonJS modules required from CommonJS
// (docker-modem requiring ssh2, say) never reach that hook on Node 20, so at exit the main thread also appends the
// keys of the CommonJS cache, and node's lazily loaded dependencies (undici, behind the global fetch) from
// process.moduleLoadList. Node offers no list of loaded modules of its own; these together are all of them.
import { appendFileSync } from 'node:fs';
import { createRequire, register } from 'node:module';
import { isMainThread } from 'node:worker_threads';

const out = process.env.LIFTOFF_MODULE_LOG;

if (isMainThread && out) {
  register(import.meta.url);
  const cjs = createRequire(import.meta.url).cache;
  process.on('exit', () => {
    const paths = Object.keys(cjs);
    // Node's own modules it loaded lazily, undici among them (the global fetch): named as node:internal/... lines.
    for (const m of process.moduleLoadList ?? [])
      if (m.startsWith('NativeModule internal/deps/')) paths.push(`node:${m.slice('NativeModule '.length)}`);
    if (paths.length) appendFileSync(out, `${paths.join('\n')}\n`);
  });
}

export async function load(url, context, next) {
  if (out && !url.startsWith('node:')) appendFileSync(out, `${url}\n`);
  return next(url, context);
}
