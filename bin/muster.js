#!/usr/bin/env node
// Entry for `npx muster`: loads the TypeScript CLI through tsx so no build step is needed.
import { register } from 'tsx/esm/api';
register();
await import('../src/cli/muster.ts');
