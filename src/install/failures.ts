// Which failures of install, uninstall and status the user can fix on the node,
// by their class: the CLI prints those as one line (exit 1) and anything else
// as a bug with its stack.
import { DatapathError } from '../bpf/errors.js';
import { isSystemError } from '../describe-error.js';
import { CommandError } from '../sys/exec.js';
import { UsageError, UserError } from '../usage-error.js';
import { ConflistError } from './cniconf/files.js';
import { ServiceAccountError } from './kubeconfig.js';

/**
 * The failure as the user sees it: a UsageError or UserError as it is; a UserError
 * for the node's own answers (a system call refused: a missing dir, a permission,
 * a full or read-only disk; a tool that failed; the kernel refusing the datapath;
 * a CNI config meshlane will not edit; no service account); undefined for a bug.
 */
export function userFacing(err: unknown): UsageError | UserError | undefined {
  if (err instanceof UsageError || err instanceof UserError) return err;
  if (err instanceof DatapathError || err instanceof CommandError || err instanceof ConflistError || err instanceof ServiceAccountError || isSystemError(err)) {
    return new UserError(err.message, { cause: err });
  }
  return undefined;
}
