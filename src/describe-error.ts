// What a caught value is, by type rather than by a cast: its message for a
// log line or a wrapping error, whether it is a failed system call (the
// failures a catch of fs, spawn or socket calls expects; anything else is a bug
// to let through), and how a bug is reported. A leaf: every layer may import it.

/** What meshlane says of a bug: the CNI error's msg (code 999) and the CLI's stderr line. */
export const INTERNAL_ERROR_MSG = 'internal error: this is a bug in meshlane, please report it';

/** The exit status of a bug (EX_SOFTWARE of sysexits.h), apart from 1 (a failure the message explains) and 2 (usage). */
export const EXIT_BUG = 70;

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

/** A bug on stderr: who, the internal error line, then the stack (or the value) on the lines after. */
export function bugReport(who: string, err: unknown): string {
  const detail = err instanceof Error ? (err.stack ?? `${err.name}: ${err.message}`) : `non-error value thrown: ${errorMessage(err)}`;
  return `${who}: ${INTERNAL_ERROR_MSG}\n${detail}\n`;
}
