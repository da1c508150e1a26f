// The bytes of the native module carried by the single executable. This is the
// source build: there are none, and src/sys/native.ts loads dist/native/meshlane.node.
// scripts/build.mjs replaces this module in the bundle with one that reads the
// bytes from the executable's parts (appended after the SEA blob: no start-up cost).
export function embeddedNative(): Uint8Array | undefined {
  return undefined;
}
