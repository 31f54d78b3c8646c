/*
 * plugind-pipe-holder: a plugin's stdout and stderr pipes, held.
 *
 * plugind gives containerd's runc shim a `binary://` stdout URI naming this
 * program (containerd's logging-binary protocol). The shim then makes two
 * pipes, gives their write ends to the plugin as its stdout and stderr and
 * starts this program with the read ends as fds 3 and 4 and a pipe as fd 5,
 * which it closes to say it is ready. The shim copies nothing: the plugin
 * writes straight into pipes that plugind reads, through /proc/<pid>/fd/3
 * and /proc/<pid>/fd/4 of this process (opening those opens the same pipes).
 *
 * It holds the read ends and never reads them, so that what the plugin writes
 * while no plugind runs waits in the pipes, as the FIFO keeper does for FIFOs.
 * Before it says ready it makes the symlink named on its command line
 * (`pidlink PATH`, from the URI's query) point at its pid, where plugind
 * finds it: a short symlink needs an inode and no data block, so this works
 * on a full disk, as mkfifo does. The
 * shim sends SIGTERM when the task is deleted: that ends it. It must live
 * until then: the shim signals the pid it started, and a pid freed early
 * could be another process's by then. If the shim dies first, it exits
 * too (it waits on a pidfd of the shim; on kernels before 5.3, until both
 * pipes have lost their writers and its parent is another process).
 *
 * No libc: a process per plugin costs 8 KiB of memory this way (a static
 * glibc program costs 44). Raw syscalls for x86-64 and arm64. Built by
 * scripts/setup.sh into build/plugind-pipe-holder.
 */

#if defined(__x86_64__)
#define SYS_close 3
#define SYS_poll_ 7
#define SYS_rt_sigaction 13
#define SYS_rt_sigprocmask 14
#define SYS_getpid 39
#define SYS_exit 60
#define SYS_getppid 110
#define SYS_symlinkat 266
#define SYS_nanosleep 35
#define SYS_close_range 436
#define SYS_pidfd_open 434
static long sys4(long n, long a, long b, long c, long d) {
  long r;
  register long r10 __asm__("r10") = d;
  __asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10) : "rcx", "r11", "memory");
  return r;
}
__asm__(".globl _start\n_start:\n xor %rbp,%rbp\n mov %rsp,%rdi\n and $-16,%rsp\n call start_c\n hlt\n");
#elif defined(__aarch64__)
#define SYS_close 57
#define SYS_ppoll 73
#define SYS_rt_sigaction 134
#define SYS_rt_sigprocmask 135
#define SYS_getpid 172
#define SYS_exit 93
#define SYS_getppid 173
#define SYS_symlinkat 36
#define SYS_nanosleep 101
#define SYS_close_range 436
#define SYS_pidfd_open 434
static long sys4(long n, long a, long b, long c, long d) {
  register long x8 __asm__("x8") = n;
  register long x0 __asm__("x0") = a;
  register long x1 __asm__("x1") = b;
  register long x2 __asm__("x2") = c;
  register long x3 __asm__("x3") = d;
  __asm__ volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3) : "memory");
  return x0;
}
__asm__(".globl _start\n_start:\n mov x0, sp\n bl start_c\n");
#else
#error "plugind-pipe-holder: x86-64 and arm64 only"
#endif

#define sys3(n, a, b, c) sys4(n, a, b, c, 0)
#define SIGSET_SIZE 8

#define AT_FDCWD (-100)
#define SIGTERM 15
#define SIG_SETMASK 2
#define POLLHUP 0x10

struct pollfd {
  int fd;
  short events, revents;
};
struct timespec {
  long sec, nsec;
};

static void quit(int code) {
  for (;;) sys3(SYS_exit, code, 0, 0);
}

static int streq(const char *a, const char *b) {
  while (*a && *a == *b) a++, b++;
  return *a == *b;
}

/* poll() with no timeout. */
static void wait_for(struct pollfd *fds, int n) {
#if defined(__x86_64__)
  sys3(SYS_poll_, (long)fds, n, -1);
#else
  sys4(SYS_ppoll, (long)fds, n, 0, 0);
#endif
}

void start_c(long *sp) {
  long argc = sp[0];
  char **argv = (char **)(sp + 1);
  const char *pidlink = 0;
  for (long i = 1; i + 1 < argc; i += 2)
    if (streq(argv[i], "pidlink")) pidlink = argv[i + 1];
  if (!pidlink) quit(2);

  /* SIGTERM must end it whatever the shim's own dispositions and mask. */
  long act[4] = {0, 0, 0, 0}; /* handler SIG_DFL, flags, restorer, mask */
  sys4(SYS_rt_sigaction, SIGTERM, (long)act, 0, SIGSET_SIZE);
  unsigned long none = 0;
  sys4(SYS_rt_sigprocmask, SIG_SETMASK, (long)&none, 0, SIGSET_SIZE);

  /* The shim lets some of its own fds through (a pipe to its log among
     them): holding them would keep them open after the shim. */
  if (sys3(SYS_close_range, 6, ~0UL >> 1, 0) < 0)
    for (long i = 6; i < 4096; i++) sys3(SYS_close, i, 0, 0);

  long parent = sys3(SYS_getppid, 0, 0, 0);
  char digits[24], *p = digits + sizeof digits;
  *--p = 0;
  for (long pid = sys3(SYS_getpid, 0, 0, 0); pid > 0; pid /= 10) *--p = (char)('0' + pid % 10);
  /* Failing, it goes on all the same: the shim takes any end of fd 5 for
     ready, and must find it alive when it sends SIGTERM. plugind, finding
     no link, fails the create and deletes the task. */
  sys3(SYS_symlinkat, (long)p, AT_FDCWD, (long)pidlink);
  /* Ready: the shim goes on with the task. */
  sys3(SYS_close, 5, 0, 0);

  /* Sleeps until the shim is gone (the pidfd turns readable), unless the
     shim's SIGTERM comes first. The parent checked after the open: one that
     died before it would leave a pidfd of our new parent. */
  long pidfd = sys3(SYS_pidfd_open, parent, 0, 0);
  if (pidfd >= 0) {
    if (sys3(SYS_getppid, 0, 0, 0) != parent) quit(0);
    struct pollfd shim = {(int)pidfd, 1 /* POLLIN */, 0};
    for (;;) {
      wait_for(&shim, 1);
      if (shim.revents) quit(0);
    }
  }
  /* No pidfds: sleeps until both pipes have lost their writers (the shim
     closes its copies as the task is deleted, just before its SIGTERM; or
     it died), then checks the parent every second. */
  struct pollfd fds[2] = {{3, 0, 0}, {4, 0, 0}};
  int open = 2;
  while (open > 0) {
    wait_for(fds, 2);
    for (int i = 0; i < 2; i++)
      if (fds[i].fd >= 0 && (fds[i].revents & POLLHUP)) fds[i].fd = -1, open--;
  }
  struct timespec second = {1, 0};
  while (sys3(SYS_getppid, 0, 0, 0) == parent) sys3(SYS_nanosleep, (long)&second, 0, 0);
  quit(0);
}
