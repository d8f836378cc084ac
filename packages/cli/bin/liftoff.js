#!/usr/bin/env node
// A committed entry point, so that npm links the `liftoff` binary at install time, before the TypeScript is built.
await import('../dist/bin.js');
