import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { brotliCompressSync, constants, gzipSync } from 'node:zlib';
import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

/**
 * Writes `NAME.br` and `NAME.gz` beside each emitted script, stylesheet and page, at the highest levels (the server
 * serves them as they are: routes/static.ts, `preCompressed`), so the UI's files are compressed once per build
 * rather than per request. A few lines over node:zlib instead of a compression plugin: nothing here needs more.
 */
function precompress() {
  return {
    name: 'liftoff-precompress',
    apply: 'build',
    writeBundle(options, bundle) {
      for (const name of Object.keys(bundle)) {
        if (!/\.(js|css|html|svg)$/.test(name)) continue;
        const file = join(options.dir, name);
        const data = readFileSync(file);
        if (data.length < 1024) continue;
        const params = { [constants.BROTLI_PARAM_QUALITY]: 11, [constants.BROTLI_PARAM_SIZE_HINT]: data.length };
        writeFileSync(`${file}.br`, brotliCompressSync(data, { params }));
        writeFileSync(`${file}.gz`, gzipSync(data, { level: 9 }));
      }
    },
  };
}

// Built by the root `npm run build` into packages/web/dist, which `liftoff server` serves at `/`.
export default defineConfig({
  plugins: [react(), precompress()],
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    sourcemap: true,
    chunkSizeWarningLimit: 1024,
    // The precompression above takes about two seconds of a build on purpose; rolldown would warn about it each time.
    rolldownOptions: { checks: { pluginTimings: false } },
  },
});
