export { startServer, DEFAULT_ENTITY, DEFAULT_QUEUE, type ServerOptions, type RunningServer } from './server.js';
export { DEFAULT_SETTINGS, type ServerSettings } from './context.js';
export { parseArtifactStore, type ArtifactStoreConfig } from './artifacts/index.js';
