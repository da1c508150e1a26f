// What a caught value is, by type rather than by a cast: its message for a
// log line or a wrapping error, and whether it is a failed system call (the
// failures a catch of fs, spawn or socket calls expects; anything else is a bug
// to let through). A leaf: every layer may import it.

/** The message of a thrown value: an Error's message (never its stack), else the value as text. */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  try {
    return String(err);
  } catch {
    // A value whose toString throws: there is nothing more to say of it.
    return 'a value that cannot be shown';
  }
}

/** The errno name (ENOENT, EACCES, EEXIST ...) of a failed system call, undefined for anything else. */
export function errnoOf(err: unknown): string | undefined {
  if (!(err instanceof Error)) return undefined;
  const code: unknown = (err as { code?: unknown }).code;
  // Node's own errors carry codes too (ERR_INVALID_ARG_TYPE ...): those are bugs, not the system's answer.
  return typeof code === 'string' && /^E[A-Z0-9]+$/.test(code) ? code : undefined;
}

/** A failed system call (the file is missing, access denied, the disk is full ...), not a bug. */
export function isSystemError(err: unknown): err is NodeJS.ErrnoException & { code: string } {
  return errnoOf(err) !== undefined;
}
