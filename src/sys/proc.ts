// Facts about processes from /proc.
import { readFileSync } from 'node:fs';
import { isSystemError } from '../describe-error.js';

/**
 * Field 22 of /proc/<pid>/stat: the process's start time in clock ticks since
 * boot. With the pid it names one process for good (a pid is reused, a pid and
 * a start time are not). undefined when no such live process (a zombie has ended).
 */
export function processStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (fields[0] === 'Z') return undefined;
    return fields[19];
  } catch (err) {
    if (!isSystemError(err)) throw err; // no such process
    return undefined;
  }
}
