// mlexec: place this process in a cgroup v2 directory and a network namespace,
// drop to a uid/gid, then exec a program. The PID stays the same from start to
// the program, so the caller's PID is the program's PID, and every socket the
// program makes is created inside the cgroup and the netns.
//
//   mlexec --cgroup DIR [--netns PATH] [--uid U] [--gid G] [--ready-fd N] [--no-pdeathsig] -- PROG [ARGS...]
//
// --ready-fd N: an inherited pipe that mlexec marks close-on-exec, so the
// caller sees EOF exactly when the program has been exec'd; on failure mlexec
// writes "E" to it first.
//
// Order: cgroup first (while still root), then setns, then setgroups/setgid/
// setuid, then PR_SET_PDEATHSIG (cleared by credential changes, so set last),
// then exec. Errors: exit 127 with a message on stderr.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

static int ready_fd = -1;

static void die(const char *what, const char *arg) {
  int e = errno;
  if (ready_fd >= 0 && write(ready_fd, "E", 1) < 0) { /* the caller sees the exit anyway */ }
  errno = e;
  fprintf(stderr, "mlexec: %s%s%s: %s\n", what, arg ? " " : "", arg ? arg : "", strerror(errno));
  exit(127);
}

static unsigned long parse_id(const char *s, const char *flag) {
  char *end = NULL;
  errno = 0;
  unsigned long v = strtoul(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0' || v > 0xfffffffeUL) {
    fprintf(stderr, "mlexec: bad %s '%s'\n", flag, s);
    exit(127);
  }
  return v;
}

int main(int argc, char **argv) {
  const char *cgroup = NULL, *netns = NULL;
  unsigned long uid = 0, gid = 0;
  int pdeathsig = 1;
  int i = 1;
  for (; i < argc; i++) {
    if (strcmp(argv[i], "--") == 0) { i++; break; }
    if (strcmp(argv[i], "--no-pdeathsig") == 0) { pdeathsig = 0; continue; }
    if (i + 1 >= argc) { fprintf(stderr, "mlexec: %s needs a value\n", argv[i]); return 127; }
    if (strcmp(argv[i], "--cgroup") == 0) cgroup = argv[++i];
    else if (strcmp(argv[i], "--netns") == 0) netns = argv[++i];
    else if (strcmp(argv[i], "--uid") == 0) uid = parse_id(argv[++i], "--uid");
    else if (strcmp(argv[i], "--gid") == 0) gid = parse_id(argv[++i], "--gid");
    else if (strcmp(argv[i], "--ready-fd") == 0) ready_fd = (int)parse_id(argv[++i], "--ready-fd");
    else { fprintf(stderr, "mlexec: unknown flag %s\n", argv[i]); return 127; }
  }
  if (cgroup == NULL || i >= argc) {
    fprintf(stderr, "usage: mlexec --cgroup DIR [--netns PATH] [--uid U] [--gid G] -- PROG [ARGS...]\n");
    return 127;
  }
  pid_t parent = getppid();
  if (ready_fd >= 0 && fcntl(ready_fd, F_SETFD, FD_CLOEXEC) != 0) {
    ready_fd = -1;
    die("fcntl --ready-fd", NULL);
  }

  char path[4096];
  if (snprintf(path, sizeof path, "%s/cgroup.procs", cgroup) >= (int)sizeof path) { errno = ENAMETOOLONG; die("cgroup path", cgroup); }
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) die("open", path);
  char pid[32];
  int n = snprintf(pid, sizeof pid, "%d\n", (int)getpid());
  if (write(fd, pid, (size_t)n) != n) die("write", path);
  close(fd);

  if (netns != NULL) {
    int nfd = open(netns, O_RDONLY | O_CLOEXEC);
    if (nfd < 0) die("open", netns);
    if (setns(nfd, CLONE_NEWNET) != 0) die("setns", netns);
    close(nfd);
  }

  if (setgroups(0, NULL) != 0) die("setgroups", NULL);
  if (setresgid((gid_t)gid, (gid_t)gid, (gid_t)gid) != 0) die("setresgid", NULL);
  if (setresuid((uid_t)uid, (uid_t)uid, (uid_t)uid) != 0) die("setresuid", NULL);

  if (pdeathsig) {
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) die("prctl PR_SET_PDEATHSIG", NULL);
    if (getppid() != parent) { fprintf(stderr, "mlexec: parent exited before exec\n"); return 127; }
  }

  execvp(argv[i], &argv[i]);
  die("exec", argv[i]);
  return 127;
}
