// Files the bundler embeds as bytes (esbuild's `binary` loader, scripts/build.mjs).
declare module '*.o' {
  const bytes: Uint8Array;
  export default bytes;
}
