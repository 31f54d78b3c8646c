// Package benchkit holds what the bench's two Go programs share: latency
// summaries, a worker pool, error collection, the plugin commands of each
// mode, how exit events are read, and what /proc says about this process,
// containerd and the shims.
package benchkit

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	apievents "github.com/containerd/containerd/api/events"
	"github.com/containerd/containerd/events"
	"github.com/containerd/typeurl"
)

// Obj is one JSON object of the output.
type Obj = map[string]interface{}

// Ms converts a duration to milliseconds.
func Ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// R3 rounds to three decimals, which is what every figure is printed with.
func R3(x float64) float64 { return math.Round(x*1000) / 1000 }

// Summary is {n,min,p50,p95,p99,max,mean} with nearest-rank percentiles,
// the shape bench/stats.ts uses for plugind's figures too.
func Summary(samples []float64) Obj {
	if len(samples) == 0 {
		return Obj{"n": 0}
	}
	s := append([]float64(nil), samples...)
	sort.Float64s(s)
	rank := func(p float64) float64 {
		i := int(math.Ceil(p/100*float64(len(s)))) - 1
		if i < 0 {
			i = 0
		} else if i >= len(s) {
			i = len(s) - 1
		}
		return R3(s[i])
	}
	total := 0.0
	for _, x := range s {
		total += x
	}
	return Obj{
		"n": len(s), "min": R3(s[0]), "p50": rank(50), "p95": rank(95), "p99": rank(99),
		"max": R3(s[len(s)-1]), "mean": R3(total / float64(len(s))),
	}
}

// Errors counts failures and keeps the first few messages.
type Errors struct {
	mu      sync.Mutex
	n       int
	samples []string
}

func (e *Errors) Add(err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.n++
	if len(e.samples) < 8 {
		e.samples = append(e.samples, err.Error())
	}
}

// Pool calls fn(0..n-1) from c goroutines (at least one).
func Pool(n, c int, fn func(i int)) {
	if c < 1 {
		c = 1
	}
	if c > n {
		c = n
	}
	next := make(chan int)
	var wg sync.WaitGroup
	wg.Add(c)
	for w := 0; w < c; w++ {
		go func() {
			defer wg.Done()
			for i := range next {
				fn(i)
			}
		}()
	}
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
}

// WriterArgs is the stdio mode's plugin command: it writes n bytes of zeros
// to stdout. "head" is what plugind's stdio run uses too.
func WriterArgs(writer string, n int64) []string {
	switch writer {
	case "dd":
		return []string{"/bin/sh", "-c", fmt.Sprintf("dd if=/dev/zero bs=65536 count=%d 2>/dev/null", n/65536)}
	case "yes":
		return []string{"/bin/sh", "-c", fmt.Sprintf("yes | head -c %d", n)}
	default:
		return []string{"/bin/head", "-c", strconv.FormatInt(n, 10), "/dev/zero"}
	}
}

// SteadyArgs is a long-running plugin that exits on SIGTERM. A bare sleep
// would not: as PID 1 of its namespace it has no handler, so TERM is ignored.
var SteadyArgs = []string{"/bin/sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"}

// Emit prints the result as one line of JSON on stdout.
func Emit(tool string, out Obj, errs *Errors) {
	errs.mu.Lock()
	out["errors"] = errs.n
	out["error_samples"] = append([]string{}, errs.samples...)
	errs.mu.Unlock()
	finite(out)
	out["tool"] = tool
	out["go"] = runtime.Version()
	out["gomaxprocs"] = runtime.GOMAXPROCS(0)
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		Fail(tool, err)
	}
}

// finite turns the NaN and infinities of a rate over nothing (no plugin went
// through) into null, which JSON can carry.
func finite(v interface{}) interface{} {
	switch x := v.(type) {
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil
		}
	case Obj:
		for k, e := range x {
			x[k] = finite(e)
		}
	}
	return v
}

// Fail ends the program with a message on stderr.
func Fail(tool string, err error) {
	fmt.Fprintf(os.Stderr, "%s: %v\n", tool, err)
	os.Exit(1)
}

// ---------------------------------------------------------------- /proc

const userHZ = 100 // clock ticks per second in /proc/<pid>/stat

func readProc(pid interface{}, name string) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%v/%s", pid, name))
	if err != nil {
		return ""
	}
	return string(b)
}

// statFields are the fields of /proc/<pid>/stat after the command name:
// [0] is the state, [1] the ppid, [11] utime, [12] stime.
func statFields(pid int) []string {
	s := readProc(pid, "stat")
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 > len(s) {
		return nil
	}
	return strings.Fields(s[i+2:])
}

// CPUSeconds is utime+stime of a process (all its threads), -1 if it is gone.
func CPUSeconds(pid int) float64 {
	f := statFields(pid)
	if len(f) < 13 {
		return -1
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return float64(u+s) / userHZ
}

// keyKB reads "Key:   123 kB" from a /proc file; -1 if absent.
func keyKB(text, key string) int64 {
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, key+":") {
			if f := strings.Fields(line[len(key)+1:]); len(f) > 0 {
				v, _ := strconv.ParseInt(f[0], 10, 64)
				return v
			}
		}
	}
	return -1
}

// StatusKB is a field of /proc/<pid>/status (pid may be "self").
func StatusKB(pid interface{}, key string) int64 { return keyKB(readProc(pid, "status"), key) }

// PssKB is the proportional set size of a process.
func PssKB(pid interface{}) int64 { return keyKB(readProc(pid, "smaps_rollup"), "Pss") }

// MemAvailableKB is the kernel's estimate of memory available to new work.
func MemAvailableKB() int64 {
	b, _ := os.ReadFile("/proc/meminfo")
	return keyKB(string(b), "MemAvailable")
}

// OpenFDs counts this process's open file descriptors.
func OpenFDs() int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	return len(ents)
}

func pids() []int {
	ents, _ := os.ReadDir("/proc")
	var r []int
	for _, e := range ents {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			r = append(r, pid)
		}
	}
	return r
}

// Shims are the containerd-shim-runc-v2 processes started for the containerd
// listening on address (the shim's command line names that socket).
func Shims(address string) []int {
	want := []byte("\x00-address\x00" + address + "\x00")
	var r []int
	for _, pid := range pids() {
		cl := []byte(readProc(pid, "cmdline"))
		if bytes.Contains(cl, []byte("containerd-shim-runc-v2")) && bytes.Contains(cl, want) {
			r = append(r, pid)
		}
	}
	return r
}

// descendants of roots, found through the ppid of every process.
func descendants(roots []int) []int {
	kids := map[int][]int{}
	for _, pid := range pids() {
		if f := statFields(pid); len(f) > 1 {
			pp, _ := strconv.Atoi(f[1])
			kids[pp] = append(kids[pp], pid)
		}
	}
	var r []int
	todo := append([]int(nil), roots...)
	for len(todo) > 0 {
		pid := todo[len(todo)-1]
		todo = todo[:len(todo)-1]
		for _, k := range kids[pid] {
			r = append(r, k)
			todo = append(todo, k)
		}
	}
	return r
}

// ---------------------------------------------------------------- CPU

// CPU is a point in time: this process's user and system time (getrusage,
// all threads) and containerd's CPU seconds.
type CPU struct {
	wall       time.Time
	user, sys  time.Duration
	containerd float64
	ctdPid     int
}

func SnapCPU(containerdPid int) CPU {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	c := CPU{wall: time.Now(), user: time.Duration(ru.Utime.Nano()), sys: time.Duration(ru.Stime.Nano()), containerd: -1, ctdPid: containerdPid}
	if containerdPid > 0 {
		c.containerd = CPUSeconds(containerdPid)
	}
	return c
}

// Wall is when the snapshot was taken.
func (c CPU) Wall() time.Time { return c.wall }

// PerItem spreads seconds over n items (at least one), to 10 µs.
func PerItem(seconds float64, n int) float64 {
	if n < 1 {
		n = 1
	}
	return math.Round(seconds/float64(n)*1e5) / 1e5
}

// ClientSeconds is this process's user+sys CPU between a and b.
func ClientSeconds(a, b CPU) float64 { return (b.user - a.user + b.sys - a.sys).Seconds() }

// CPUReport says what CPU this client and containerd used between a and b.
// client_cpu_s is user+sys, the figure to compare with plugind's.
func CPUReport(a, b CPU) Obj {
	wall := b.wall.Sub(a.wall).Seconds()
	cl := ClientSeconds(a, b)
	r := Obj{
		"wall_s":                     R3(wall),
		"client_user_s":              R3((b.user - a.user).Seconds()),
		"client_sys_s":               R3((b.sys - a.sys).Seconds()),
		"client_cpu_s":               R3(cl),
		"client_cpu_pct_of_one_core": R3(100 * cl / wall),
	}
	if a.containerd >= 0 && b.containerd >= 0 {
		r["containerd_cpu_s"] = R3(b.containerd - a.containerd)
		r["containerd_cpu_pct_of_one_core"] = R3(100 * (b.containerd - a.containerd) / wall)
		r["containerd_rss_kb_end"] = StatusKB(b.ctdPid, "VmRSS")
	}
	return r
}

// ---------------------------------------------------------------- memory

// MemReport is the memory of this client, of containerd, of every shim of
// that containerd, and of the plugin processes under those shims.
func MemReport(address string, containerdPid int) Obj {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	r := Obj{
		"client_rss_kb":           StatusKB("self", "VmRSS"),
		"client_rss_anon_kb":      StatusKB("self", "RssAnon"),
		"client_hwm_kb":           StatusKB("self", "VmHWM"),
		"client_pss_kb":           PssKB("self"),
		"client_threads":          StatusKB("self", "Threads"),
		"client_goroutines":       runtime.NumGoroutine(),
		"client_go_heap_inuse_kb": int64(ms.HeapInuse / 1024),
		"client_open_fds":         OpenFDs(),
	}
	shims := Shims(address)
	var rss, pss, anon []float64
	var rssSum, pssSum, threads int64
	for _, pid := range shims {
		x, y, a := StatusKB(pid, "VmRSS"), PssKB(pid), StatusKB(pid, "RssAnon")
		rss, pss, anon = append(rss, float64(x)), append(pss, float64(y)), append(anon, float64(a))
		rssSum += x
		pssSum += y
		threads += StatusKB(pid, "Threads")
	}
	r["shim_count"] = len(shims)
	r["shim_rss_kb"] = Summary(rss)
	r["shim_pss_kb"] = Summary(pss)
	r["shim_rss_anon_kb"] = Summary(anon)
	r["shim_rss_kb_sum"] = rssSum
	r["shim_pss_kb_sum"] = pssSum
	r["shim_threads_sum"] = threads
	procs := descendants(shims)
	var pRSS, pPSS int64
	for _, pid := range procs {
		pRSS += StatusKB(pid, "VmRSS")
		pPSS += PssKB(pid)
	}
	r["plugin_procs"] = len(procs)
	r["plugin_procs_rss_kb_sum"] = pRSS
	r["plugin_procs_pss_kb_sum"] = pPSS
	if containerdPid > 0 {
		r["containerd_rss_kb"] = StatusKB(containerdPid, "VmRSS")
		r["containerd_pss_kb"] = PssKB(containerdPid)
		r["containerd_threads"] = StatusKB(containerdPid, "Threads")
	}
	return r
}

// Held measures N plugins held for settle: the idle CPU of this client,
// containerd and all shims over that time, then memory (which is not cheap
// to read, so it comes after the idle window).
func Held(address string, containerdPid int, settle time.Duration) (idle, mem Obj) {
	shims := Shims(address)
	shimCPU := func() float64 {
		t := 0.0
		for _, pid := range shims {
			if s := CPUSeconds(pid); s > 0 {
				t += s
			}
		}
		return t
	}
	s0, c0 := shimCPU(), SnapCPU(containerdPid)
	time.Sleep(settle)
	s1, c1 := shimCPU(), SnapCPU(containerdPid)
	idle = CPUReport(c0, c1)
	secs := c1.wall.Sub(c0.wall).Seconds()
	idle["settle_s"] = R3(secs)
	idle["all_shims_cpu_s"] = R3(s1 - s0)
	idle["all_shims_cpu_pct_of_one_core"] = R3(100 * (s1 - s0) / secs)
	return idle, MemReport(address, containerdPid)
}

// Steady is what both tools measure the same way in steady mode: plugins
// created and held, then SIGTERM to all. Report puts its figures in out;
// each tool adds how its exits were seen.
type Steady struct {
	Started, Exited    int
	Before, Created    CPU
	After              CPU
	CreateStart        []float64
	MemBefore, MemHeld Obj
	Idle               Obj
	AvailDropKB        int64
	Signalled, AllSent time.Time
	KillErrors         int64
	Address            string
}

func (s Steady) Report(out Obj) {
	createS := s.Created.Wall().Sub(s.Before.Wall()).Seconds()
	out["args"] = SteadyArgs
	out["started"] = s.Started
	out["ok"] = s.Exited
	out["exited"] = s.Exited
	out["create_phase_s"] = R3(createS)
	out["create_throughput_per_s"] = R3(float64(s.Started) / createS)
	out["create_start_ms"] = Summary(s.CreateStart)
	out["mem_before"] = s.MemBefore
	out["mem_held"] = s.MemHeld
	out["mem_available_drop_kb"] = s.AvailDropKB
	if s.Started > 0 {
		out["mem_available_drop_kb_per_plugin"] = s.AvailDropKB / int64(s.Started)
	}
	out["idle_cpu_during_settle"] = s.Idle
	out["signal_issue_s"] = R3(s.AllSent.Sub(s.Signalled).Seconds())
	out["kill_errors"] = s.KillErrors
	out["cpu_create_phase"] = CPUReport(s.Before, s.Created)
	out["cpu_total"] = CPUReport(s.Before, s.After)
	out["shims_left_after_delete"] = len(Shims(s.Address))
	out["client_open_fds_end"] = OpenFDs()
}

// ExitEvents reads a /tasks/exit subscription until it ends. The exit of an
// init process goes to on, with the envelope's timestamp (set by the shim
// as it publishes) and when it was received here; the probe's exit (a
// made-up one that shows the subscription live) calls probed instead.
func ExitEvents(ctx context.Context, envs <-chan *events.Envelope, errc <-chan error, errs *Errors, probeID string, probed func(),
	on func(te *apievents.TaskExit, published, received time.Time)) {
	for {
		select {
		case env := <-envs:
			now := time.Now()
			if env == nil || env.Event == nil {
				continue
			}
			v, err := typeurl.UnmarshalAny(env.Event)
			if err != nil {
				errs.Add(fmt.Errorf("event %s: %w", env.Topic, err))
				continue
			}
			te, ok := v.(*apievents.TaskExit)
			if !ok || te.ID != te.ContainerID { // an exec's exit, not the plugin's
				continue
			}
			if te.ContainerID == probeID {
				probed()
				continue
			}
			on(te, env.Timestamp, now)
		case err := <-errc:
			if err != nil && ctx.Err() == nil {
				errs.Add(fmt.Errorf("event stream: %w", err))
			}
			return
		}
	}
}

// StartAll starts n plugins, c at a time, and returns those that started,
// in the order asked; what failed goes to errs.
func StartAll[P any](n, c int, errs *Errors, start func() (P, error)) []P {
	slots := make([]P, n)
	ok := make([]bool, n)
	Pool(n, c, func(i int) {
		p, err := start()
		if err != nil {
			errs.Add(err)
			return
		}
		slots[i], ok[i] = p, true
	})
	var live []P
	for i, p := range slots {
		if ok[i] {
			live = append(live, p)
		}
	}
	return live
}

// SignalAll calls signal for each of n plugins, c at a time, and returns
// how many failed (each also in errs).
func SignalAll(n, c int, errs *Errors, signal func(i int) error) int64 {
	var failed int64
	Pool(n, c, func(i int) {
		if err := signal(i); err != nil {
			atomic.AddInt64(&failed, 1)
			errs.Add(err)
		}
	})
	return failed
}
