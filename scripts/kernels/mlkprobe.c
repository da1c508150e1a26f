// mlkprobe: load a BPF object program by program (libbpf autoload: only one
// program per load, maps reused from pins like the loader's `map name X pinned
// P`), pin each program that passes, attach it (cgroup programs to a cgroup,
// sk_msg to the sockhash, tc to lo's clsact), and print one JSON line per
// program: {"prog","type","load":"ok"|"error","error","attach"}.
//
//   mlkprobe <object> <pin dir> <cgroup dir>
//
// Used inside the kernel-matrix guests (scripts/kernels/guest-check.ts).
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LOG_SIZE (64u << 20)
static char libbpf_msgs[1u << 20];
static size_t libbpf_len;

static int on_print(enum libbpf_print_level level, const char *fmt, va_list ap) {
	if (level == LIBBPF_DEBUG) return 0;
	if (getenv("MLKPROBE_LOG")) {
		va_list cp;
		va_copy(cp, ap);
		vfprintf(stderr, fmt, cp);
		va_end(cp);
	}
	if (libbpf_len < sizeof(libbpf_msgs) - 1) {
		int n = vsnprintf(libbpf_msgs + libbpf_len, sizeof(libbpf_msgs) - libbpf_len, fmt, ap);
		if (n > 0) libbpf_len += (size_t)n;
		if (libbpf_len >= sizeof(libbpf_msgs)) libbpf_len = sizeof(libbpf_msgs) - 1;
	}
	return 0;
}

static void json_str(const char *s) {
	putchar('"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\') printf("\\%c", c);
		else if (c == '\n') printf("\\n");
		else if (c < 0x20) printf("\\u%04x", c);
		else putchar(c);
	}
	putchar('"');
}

static int skip_line(const char *l, size_t n) {
	static const char *skip[] = {"processed ", "verification time", "stack depth", "-- END PROG LOAD LOG --", "-- BEGIN PROG LOAD LOG --", NULL};
	if (n == 0) return 1;
	for (int i = 0; skip[i]; i++)
		if (strncmp(l, skip[i], strlen(skip[i])) == 0) return 1;
	return 0;
}

// The verifier's error: the last line of its log that is not a summary line.
static void last_error_line(const char *log, char *out, size_t outsz) {
	out[0] = 0;
	const char *end = log + strlen(log);
	while (end > log) {
		const char *nl = end;
		const char *start = nl;
		while (start > log && start[-1] != '\n') start--;
		size_t n = (size_t)(nl - start);
		if (!skip_line(start, n)) {
			if (n >= outsz) n = outsz - 1;
			memcpy(out, start, n);
			out[n] = 0;
			return;
		}
		end = start > log ? start - 1 : log;
	}
}

static void mkdirs(const char *p) {
	char b[4096];
	snprintf(b, sizeof b, "%s", p);
	for (char *s = b + 1; *s; s++)
		if (*s == '/') { *s = 0; mkdir(b, 0755); *s = '/'; }
	mkdir(b, 0755);
}

static int attach(struct bpf_object *obj, struct bpf_program *p, const char *cgdir, char *err, size_t errsz) {
	int fd = bpf_program__fd(p);
	enum bpf_prog_type t = bpf_program__type(p);
	const char *name = bpf_program__name(p);
	if (t == BPF_PROG_TYPE_SK_MSG) {
		struct bpf_map *m = bpf_object__find_map_by_name(obj, "ml_sock_pairs");
		if (!m) { snprintf(err, errsz, "no map ml_sock_pairs"); return -1; }
		if (bpf_prog_attach(fd, bpf_map__fd(m), BPF_SK_MSG_VERDICT, 0)) { snprintf(err, errsz, "sk_msg attach: %s", strerror(errno)); return -1; }
		return 0;
	}
	if (t == BPF_PROG_TYPE_SCHED_CLS) {
		int ingress = strstr(name, "ingress") != NULL;
		DECLARE_LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = (int)if_nametoindex("lo"), .attach_point = ingress ? BPF_TC_INGRESS : BPF_TC_EGRESS);
		int r = bpf_tc_hook_create(&hook);
		if (r && r != -EEXIST) { snprintf(err, errsz, "tc hook on lo: %s", strerror(-r)); return -1; }
		DECLARE_LIBBPF_OPTS(bpf_tc_opts, o, .prog_fd = fd);
		r = bpf_tc_attach(&hook, &o);
		if (r) { snprintf(err, errsz, "tc attach on lo: %s", strerror(-r)); return -1; }
		return 0;
	}
	int cg = open(cgdir, O_RDONLY | O_DIRECTORY);
	if (cg < 0) { snprintf(err, errsz, "open %s: %s", cgdir, strerror(errno)); return -1; }
	int r = bpf_prog_attach(fd, cg, bpf_program__expected_attach_type(p), BPF_F_ALLOW_MULTI);
	int e = errno;
	close(cg);
	if (r) { snprintf(err, errsz, "cgroup attach: %s", strerror(e)); return -1; }
	return 0;
}

int main(int argc, char **argv) {
	if (argc != 4 || strlen(argv[2]) > 1800) { fprintf(stderr, "usage: mlkprobe <object> <pin dir> <cgroup dir>\n"); return 2; }
	const char *path = argv[1], *pindir = argv[2], *cgdir = argv[3];
	char maps[2048], progs[2048];
	snprintf(maps, sizeof maps, "%s/maps", pindir);
	snprintf(progs, sizeof progs, "%s/progs", pindir);
	mkdirs(maps);
	mkdirs(progs);
	libbpf_set_print(on_print);
	char *log = malloc(LOG_SIZE);
	struct bpf_object *names = bpf_object__open_file(path, NULL);
	if (!names) { fprintf(stderr, "mlkprobe: cannot open %s: %s\n", path, strerror(errno)); return 1; }
	struct bpf_program *np;
	int failed = 0;
	bpf_object__for_each_program(np, names) {
		const char *target = bpf_program__name(np);
		libbpf_len = 0;
		libbpf_msgs[0] = 0;
		log[0] = 0;
		struct bpf_object *obj = bpf_object__open_file(path, NULL);
		if (!obj) { fprintf(stderr, "mlkprobe: reopen failed\n"); return 1; }
		struct bpf_program *p, *mine = NULL;
		bpf_object__for_each_program(p, obj) {
			int me = strcmp(bpf_program__name(p), target) == 0;
			bpf_program__set_autoload(p, me);
			if (me) {
				mine = p;
				bpf_program__set_log_buf(p, log, LOG_SIZE);
				// MLKPROBE_LOG=<prog>: log level 1 for that program, and its lines about functions on stderr.
				const char *want = getenv("MLKPROBE_LOG");
				if (want && strcmp(want, target) == 0) bpf_program__set_log_level(p, 1);
			}
		}
		struct bpf_map *m;
		bpf_object__for_each_map(m, obj) {
			if (bpf_map__is_internal(m)) continue;
			char mp[4096 + 256];
			snprintf(mp, sizeof mp, "%s/%s", maps, bpf_map__name(m));
			bpf_map__set_pin_path(m, mp);
		}
		const char *type = libbpf_bpf_prog_type_str(bpf_program__type(mine));
		int r = bpf_object__load(obj);
		const char *want = getenv("MLKPROBE_LOG");
		if (want && strcmp(want, target) == 0) {
			for (char *l = log, *nl; l && *l; l = nl ? nl + 1 : NULL) {
				nl = strchr(l, '\n');
				if (nl) *nl = 0;
				if (strstr(l, "unc#") || strstr(l, "Arg#") || strstr(l, "processed") || strstr(l, "Validating")) fprintf(stderr, "%s\n", l);
				if (nl) *nl = '\n';
			}
		}
		printf("{\"prog\":");
		json_str(target);
		// libbpf loads without the object's BTF when the kernel refuses it (then
		// global functions are verified as static ones): say so, with the kernel's reason.
		char btf[1024] = "ok";
		if (strstr(libbpf_msgs, "BTF is optional, ignoring")) {
			char *end = strstr(libbpf_msgs, "-- END BTF LOAD LOG --");
			char why[900] = "";
			if (end) {
				*end = 0;
				last_error_line(libbpf_msgs, why, sizeof why);
				*end = '-';
			}
			snprintf(btf, sizeof btf, "rejected: %s", why[0] ? why : "?");
		}
		printf(",\"btf\":");
		json_str(btf);
		printf(",\"type\":");
		json_str(type ? type : "?");
		if (r) {
			char line[1024];
			last_error_line(log, line, sizeof line);
			if (!line[0]) last_error_line(libbpf_msgs, line, sizeof line);
			printf(",\"load\":\"error\",\"errno\":%d,\"error\":", -r);
			json_str(line);
			printf(",\"attach\":\"skipped\"");
			failed++;
		} else {
			char pp[4096], err[4096 + 512] = "";
			snprintf(pp, sizeof pp, "%s/%s", progs, target);
			printf(",\"load\":\"ok\"");
			if (bpf_program__pin(mine, pp)) snprintf(err, sizeof err, "pin %s: %s", pp, strerror(errno));
			else attach(obj, mine, cgdir, err, sizeof err);
			printf(",\"attach\":");
			json_str(err[0] ? err : "ok");
			if (err[0]) failed++;
		}
		printf("}\n");
		fflush(stdout);
		bpf_object__close(obj);
	}
	bpf_object__close(names);
	free(log);
	return failed ? 1 : 0;
}
