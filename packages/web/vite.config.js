import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

// Built by the root `npm run build` into packages/web/dist, which `liftoff server` serves at `/`.
export default defineConfig({
  plugins: [react()],
  build: { outDir: 'dist', emptyOutDir: true, sourcemap: true, chunkSizeWarningLimit: 1024 },
});
