// Version and commit, fixed at build time by the bundler (scripts/build.mjs `define`).
// Under tests (no bundler) they read as the package's "dev" values.
declare const MESHLANE_VERSION: string | undefined;
declare const MESHLANE_COMMIT: string | undefined;

export const VERSION: string = typeof MESHLANE_VERSION === 'string' ? MESHLANE_VERSION : '0.0.0-dev';
export const COMMIT: string = typeof MESHLANE_COMMIT === 'string' ? MESHLANE_COMMIT : 'unknown';
