// The two kinds of failure a user can fix, told apart from bugs by their class
// (as corepack does): the CLI prints them as one line without a stack; any other
// error that reaches it is a bug and is printed with its stack.

/** A mistake in how a command was called: printed without a stack, exit code 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/**
 * A problem the user can fix on the node: a missing directory or mount, a
 * permission, a kernel or a tool that refuses, another process holding the
 * lock. Printed as one line without a stack, exit code 1.
 */
export class UserError extends Error {
  override name = 'UserError';
}
