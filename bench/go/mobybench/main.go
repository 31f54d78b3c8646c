// mobybench runs plugins through moby's own plugin executor, the code
// dockerd runs managed plugins with (plugin/executor/containerd on top of
// libcontainerd/remote, from Debian's docker.io source package), so that what
// plugind replaces is measured as it is, not as a copy of it:
//
//	pluginexec.New(ctx, execRoot, client, namespace, handler, runtime)
//	Executor.Create(id, spec, stdout, stderr)   NewContainer + NewTask(FIFOs in the bundle dir) + Start
//	the exit event -> libcontainerd deletes task and container -> handler.HandleExitEvent(id)
//	Executor.Signal(id, SIGTERM)                steady mode
//
// The spec is made as moby's plugin manager makes one (plugin/v2 InitSpec)
// for a plugin without extra settings: docker's oci.DefaultSpec(), the rootfs
// directory as root, the plugin's exec dir bind-mounted at /run/docker/plugins,
// PATH, cwd /, no cgroupsPath (-cgroups-path sets one, so that the other
// tools' placement can be matched). The runtime is what dockerd configures by
// default (daemon defaultV2ShimConfig): the io.containerd.runc.v2 shim with
// runc Options{BinaryName, Root}; -runtime-binary sets BinaryName.
//
// The executor does not show containerd's event timestamps, so an optional
// second /tasks/exit subscription (-observe) records them for the exit lag.
//
// Modes and output as gobench's: lifecycle | stdio | steady, one JSON object.
// Built by bench/setup.sh (GOPATH mode, Debian's Go sources only).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/containerd/containerd"
	apievents "github.com/containerd/containerd/api/events"
	"github.com/containerd/containerd/namespaces"
	runcoptions "github.com/containerd/containerd/runtime/v2/runc/options"
	"github.com/docker/docker/api/types"
	dockeroci "github.com/docker/docker/oci"
	"github.com/docker/docker/pkg/system"
	pluginexec "github.com/docker/docker/plugin/executor/containerd"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/sirupsen/logrus"

	kit "plugind-bench/benchkit"
)

const tool = "mobybench"

type flags struct {
	address, namespace, rootfs, mode, execRoot string
	runtimeBinary, runcRoot, writer, idPrefix  string
	label, logLevel, cgroupsPath               string
	n, c, containerdPid                        int
	bytes                                      int64
	timeout, settle                            time.Duration
	observe                                    bool
}

// ---------------------------------------------------------------- exits

// handler is the ExitHandler that moby's plugin manager is to the executor.
// When it is called, libcontainerd has already deleted task and container.
type handler struct {
	execRoot string
	probeID  string
	probed   chan struct{}
	once     sync.Once

	mu      sync.Mutex
	waiting map[string]chan time.Time
	early   map[string]time.Time
	seen    map[string]bool
	dups    int
}

func (h *handler) HandleExitEvent(id string) error {
	now := time.Now()
	// as the manager's HandleExitEvent: the plugin's exec (and bundle) dir goes
	os.RemoveAll(filepath.Join(h.execRoot, id))
	if id == h.probeID {
		h.once.Do(func() { close(h.probed) })
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.seen[id] {
		h.dups++
		return nil
	}
	h.seen[id] = true
	if ch, ok := h.waiting[id]; ok {
		delete(h.waiting, id)
		ch <- now
	} else {
		h.early[id] = now
	}
	return nil
}

func (h *handler) expect(id string) <-chan time.Time {
	ch := make(chan time.Time, 1)
	h.mu.Lock()
	defer h.mu.Unlock()
	if t, ok := h.early[id]; ok {
		delete(h.early, id)
		ch <- t
	} else {
		h.waiting[id] = ch
	}
	return ch
}

// observer keeps the envelope timestamp of each plugin's exit event.
type observer struct {
	probeID string
	probed  chan struct{}
	once    sync.Once

	mu        sync.Mutex
	published map[string]time.Time
	lag       []float64
}

func (o *observer) serve(ctx context.Context, client *containerd.Client, ns string, errs *kit.Errors) {
	envs, errc := client.EventService().Subscribe(ctx, `namespace==`+ns+`,topic=="/tasks/exit"`)
	kit.ExitEvents(ctx, envs, errc, errs, o.probeID, func() { o.once.Do(func() { close(o.probed) }) },
		func(te *apievents.TaskExit, published, received time.Time) {
			o.mu.Lock()
			defer o.mu.Unlock()
			if _, dup := o.published[te.ContainerID]; !dup {
				o.published[te.ContainerID] = published
				o.lag = append(o.lag, kit.Ms(received.Sub(published)))
			}
		})
}

// ---------------------------------------------------------------- stdio

// sink counts what the executor copies into it and notes when the executor
// closes it, which it does at the end of the stream.
type sink struct {
	n        int64
	once     sync.Once
	closed   chan struct{}
	closedAt time.Time
}

func newSink() *sink { return &sink{closed: make(chan struct{})} }

func (s *sink) Write(p []byte) (int, error) { atomic.AddInt64(&s.n, int64(len(p))); return len(p), nil }
func (s *sink) bytes() int64                { return atomic.LoadInt64(&s.n) }
func (s *sink) Close() error {
	s.once.Do(func() { s.closedAt = time.Now(); close(s.closed) })
	return nil
}

var _ io.WriteCloser = (*sink)(nil)

// ---------------------------------------------------------------- one plugin

type mobybench struct {
	f      *flags
	client *containerd.Client
	exec   *pluginexec.Executor
	h      *handler
	obs    *observer
	errs   *kit.Errors
	seq    int64
}

type plugin struct {
	id             string
	stdout, stderr *sink
	exitc          <-chan time.Time
	begin, created time.Time // Create called, Create returned (task started)
	handled        time.Time // HandleExitEvent called
	drained        time.Time // both streams closed
}

// spec follows moby's plugin/v2 InitSpec for a plugin with no settings.
func (m *mobybench) spec(id string, args []string) (specs.Spec, error) {
	s := dockeroci.DefaultSpec()
	s.Root = &specs.Root{Path: m.f.rootfs}
	dir := filepath.Join(m.f.execRoot, id)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return s, err
	}
	s.Mounts = append(s.Mounts, specs.Mount{Source: dir, Destination: "/run/docker/plugins", Type: "bind", Options: []string{"rbind", "rshared"}})
	s.Process.Terminal = false
	s.Process.Args = args
	s.Process.Cwd = "/"
	s.Process.Env = []string{"PATH=" + system.DefaultPathEnv(runtime.GOOS)}
	switch m.f.cgroupsPath {
	case "":
	case "ns":
		s.Linux.CgroupsPath = "/" + m.f.namespace + "/" + id
	default:
		s.Linux.CgroupsPath = m.f.cgroupsPath
	}
	return s, nil
}

func (m *mobybench) create(args []string) (*plugin, error) {
	p := &plugin{id: fmt.Sprintf("%s-%d-%d", m.f.idPrefix, os.Getpid(), atomic.AddInt64(&m.seq, 1)), stdout: newSink(), stderr: newSink()}
	p.begin = time.Now()
	s, err := m.spec(p.id, args)
	if err != nil {
		return nil, err
	}
	p.exitc = m.h.expect(p.id)
	if err := m.exec.Create(p.id, s, p.stdout, p.stderr); err != nil {
		return nil, fmt.Errorf("Executor.Create %s: %w", p.id, err)
	}
	p.created = time.Now()
	return p, nil
}

// wait for the handler to be called and both streams to end.
func (m *mobybench) wait(p *plugin) error {
	limit := time.After(m.f.timeout)
	select {
	case p.handled = <-p.exitc:
	case <-limit:
		return fmt.Errorf("%s: HandleExitEvent not called within %s", p.id, m.f.timeout)
	}
	for _, s := range []*sink{p.stdout, p.stderr} {
		select {
		case <-s.closed:
		case <-limit:
			return fmt.Errorf("%s: output not closed within %s", p.id, m.f.timeout)
		}
	}
	p.drained = p.stdout.closedAt
	if p.stderr.closedAt.After(p.drained) {
		p.drained = p.stderr.closedAt
	}
	return nil
}

// end is when the plugin was all gone: handled and drained.
func (p *plugin) end() time.Time {
	if p.drained.After(p.handled) {
		return p.drained
	}
	return p.handled
}

func (m *mobybench) collect(n, c int, args []string) []*plugin {
	var mu sync.Mutex
	var done []*plugin
	kit.Pool(n, c, func(int) {
		p, err := m.create(args)
		if err == nil {
			err = m.wait(p)
		}
		if err != nil {
			m.errs.Add(err)
			return
		}
		mu.Lock()
		done = append(done, p)
		mu.Unlock()
	})
	return done
}

// ---------------------------------------------------------------- modes

func (m *mobybench) header() kit.Obj {
	return kit.Obj{
		"label": m.f.label, "mode": m.f.mode, "n": m.f.n, "c": m.f.c,
		"io":      "moby executor: libcontainerd DirectIO FIFOs in the bundle dir",
		"runtime": "io.containerd.runc.v2", "runtime_binary": m.f.runtimeBinary, "cgroups_path": cgroupsLabel(m.f.cgroupsPath),
		"moby_source":           "docker.io " + mobyVersion + " (Debian source package)",
		"observer_subscription": m.f.observe,
	}
}

func cgroupsLabel(path string) string {
	if path == "" {
		return "unset"
	}
	return path
}

// exitReport: the observer's lag, and the time from the exit event to the
// handler (moby deletes task and container in between).
func (m *mobybench) exitReport(out kit.Obj, ps []*plugin) {
	m.h.mu.Lock()
	out["duplicate_exit_handler_calls"] = m.h.dups
	m.h.mu.Unlock()
	if m.obs == nil {
		return
	}
	m.obs.mu.Lock()
	defer m.obs.mu.Unlock()
	out["exit_event_lag_ms"] = kit.Summary(m.obs.lag)
	var toHandler []float64
	for _, p := range ps {
		if t, ok := m.obs.published[p.id]; ok && !p.handled.IsZero() {
			toHandler = append(toHandler, kit.Ms(p.handled.Sub(t)))
		}
	}
	out["exit_event_to_handler_ms"] = kit.Summary(toHandler)
}

func (m *mobybench) lifecycle() kit.Obj {
	args := []string{"/bin/true"}
	fds := kit.OpenFDs()
	before := kit.SnapCPU(m.f.containerdPid)
	done := m.collect(m.f.n, m.f.c, args)
	after := kit.SnapCPU(m.f.containerdPid)
	var createStart, toHandler, total []float64
	for _, p := range done {
		createStart = append(createStart, kit.Ms(p.created.Sub(p.begin)))
		toHandler = append(toHandler, kit.Ms(p.handled.Sub(p.created)))
		total = append(total, kit.Ms(p.end().Sub(p.begin)))
	}
	wall := after.Wall().Sub(before.Wall()).Seconds()
	out := m.header()
	out["args"] = args
	out["ok"] = len(done)
	out["wall_s"] = kit.R3(wall)
	out["throughput_per_s"] = kit.R3(float64(len(done)) / wall)
	out["create_start_ms"] = kit.Summary(createStart)
	out["start_to_handler_ms"] = kit.Summary(toHandler)
	out["lifecycle_ms"] = kit.Summary(total)
	m.exitReport(out, done)
	out["cpu"] = kit.CPUReport(before, after)
	out["client_cpu_s_per_lifecycle"] = kit.PerItem(kit.ClientSeconds(before, after), len(done))
	out["client_open_fds_before"] = fds
	out["client_open_fds_after"] = kit.OpenFDs()
	out["client_rss_kb_end"] = kit.StatusKB("self", "VmRSS")
	return out
}

func (m *mobybench) stdio() kit.Obj {
	args := kit.WriterArgs(m.f.writer, m.f.bytes)
	c := m.f.c
	if c <= 0 {
		c = m.f.n
	}
	before := kit.SnapCPU(m.f.containerdPid)
	done := m.collect(m.f.n, c, args)
	after := kit.SnapCPU(m.f.containerdPid)
	var total, stderrTotal int64
	var first, last time.Time
	var perPlugin []float64
	wrong := 0
	for _, p := range done {
		got := p.stdout.bytes()
		total += got
		stderrTotal += p.stderr.bytes()
		if got != m.f.bytes {
			wrong++
		}
		// the plugin may write as soon as Create has started it, and Create
		// cannot be looked into: the window opens when it is called
		if first.IsZero() || p.begin.Before(first) {
			first = p.begin
		}
		if p.drained.After(last) {
			last = p.drained
		}
		perPlugin = append(perPlugin, float64(got)/1e6/p.drained.Sub(p.begin).Seconds())
	}
	window := last.Sub(first).Seconds()
	out := m.header()
	out["c"] = c
	out["writer"] = m.f.writer
	out["args"] = args
	out["ok"] = len(done)
	out["bytes_per_plugin"] = m.f.bytes
	out["expected_total_bytes"] = m.f.bytes * int64(m.f.n)
	out["total_bytes_received"] = total
	out["stderr_bytes_received"] = stderrTotal
	out["bytes_match"] = total == m.f.bytes*int64(m.f.n) && wrong == 0
	out["plugins_with_wrong_byte_count"] = wrong
	out["stream_window_s"] = kit.R3(window)
	out["aggregate_MBps"] = kit.R3(float64(total) / 1e6 / window)
	// the same window as gobench's figure of that name
	out["aggregate_MBps_from_create"] = out["aggregate_MBps"]
	out["wall_s"] = kit.R3(after.Wall().Sub(before.Wall()).Seconds())
	out["per_plugin_MBps"] = kit.Summary(perPlugin)
	m.exitReport(out, done)
	out["cpu"] = kit.CPUReport(before, after)
	out["client_rss_kb_end"] = kit.StatusKB("self", "VmRSS")
	out["client_hwm_kb"] = kit.StatusKB("self", "VmHWM")
	return out
}

func (m *mobybench) steady() kit.Obj {
	memBefore := kit.MemReport(m.f.address, m.f.containerdPid)
	avail0 := kit.MemAvailableKB()
	before := kit.SnapCPU(m.f.containerdPid)
	live := kit.StartAll(m.f.n, m.f.c, m.errs, func() (*plugin, error) { return m.create(kit.SteadyArgs) })
	created := kit.SnapCPU(m.f.containerdPid)
	var createStart []float64
	for _, p := range live {
		createStart = append(createStart, kit.Ms(p.created.Sub(p.begin)))
	}
	idle, memHeld := kit.Held(m.f.address, m.f.containerdPid, m.f.settle)
	availDrop := avail0 - kit.MemAvailableKB()

	tSig := time.Now()
	killErrs := kit.SignalAll(len(live), m.f.c, m.errs, func(i int) error {
		if err := m.exec.Signal(live[i].id, int(syscall.SIGTERM)); err != nil {
			return fmt.Errorf("Executor.Signal %s: %w", live[i].id, err)
		}
		return nil
	})
	tSent := time.Now()
	var lastHandled time.Time
	exited := 0
	for _, p := range live {
		if err := m.wait(p); err != nil {
			m.errs.Add(err)
			continue
		}
		exited++
		if p.handled.After(lastHandled) {
			lastHandled = p.handled
		}
	}
	tDone := time.Now()
	after := kit.SnapCPU(m.f.containerdPid)

	out := m.header()
	kit.Steady{
		Started: len(live), Exited: exited,
		Before: before, Created: created, After: after,
		CreateStart: createStart, MemBefore: memBefore, MemHeld: memHeld, Idle: idle, AvailDropKB: availDrop,
		Signalled: tSig, AllSent: tSent, KillErrors: killErrs, Address: m.f.address,
	}.Report(out)
	if exited > 0 {
		// moby deletes task and container before it calls the handler, so
		// this includes the teardown
		out["sigterm_to_all_exit_handled_s"] = kit.R3(lastHandled.Sub(tSig).Seconds())
	}
	out["sigterm_to_all_done_s"] = kit.R3(tDone.Sub(tSig).Seconds())
	m.exitReport(out, live)
	return out
}

// ---------------------------------------------------------------- main

// mobyVersion is filled in by bench/setup.sh (-ldflags -X).
var mobyVersion = "unknown"

// awaitSubscriptions publishes a made-up exit until libcontainerd has passed
// it to our handler (and the observer has seen it), so that no exit of the
// run can be missed. libcontainerd subscribes on a goroutine of its own and
// says nothing when it is live; its handling of the probe is two not-found
// deletes and the handler call.
func (m *mobybench) awaitSubscriptions(ctx context.Context) error {
	want := []chan struct{}{m.h.probed}
	if m.obs != nil {
		want = append(want, m.obs.probed)
	}
	deadline := time.After(10 * time.Second)
	for _, ch := range want {
		for done := false; !done; {
			ev := &apievents.TaskExit{ContainerID: m.h.probeID, ID: m.h.probeID, ExitedAt: time.Now()}
			if err := m.client.EventService().Publish(ctx, "/tasks/exit", ev); err != nil {
				return fmt.Errorf("publish probe: %w", err)
			}
			select {
			case <-ch:
				done = true
			case <-time.After(50 * time.Millisecond):
			case <-deadline:
				return errors.New("the exit subscriptions never delivered")
			}
		}
	}
	return nil
}

func main() {
	f := &flags{}
	flag.StringVar(&f.address, "address", "", "containerd socket (required)")
	flag.StringVar(&f.namespace, "namespace", "bench-plugins.moby", "containerd namespace (dockerd's: plugins.moby)")
	flag.StringVar(&f.rootfs, "rootfs", "", "absolute path of a busybox rootfs directory (required)")
	flag.StringVar(&f.mode, "mode", "lifecycle", "lifecycle | stdio | steady")
	flag.StringVar(&f.execRoot, "exec-root", "", "the executor's root (dockerd's: /run/docker/plugins): bundles, FIFOs and exec dirs (required)")
	flag.StringVar(&f.runtimeBinary, "runtime-binary", "runc", "OCI runtime the runc v2 shim runs (Options.BinaryName): runc, crun, ...")
	flag.StringVar(&f.runcRoot, "runc-root", "", "state root of the OCI runtime (Options.Root; default <exec-root>/runtime-<runtime-binary>)")
	flag.StringVar(&f.writer, "writer", "head", "stdio: head | dd | yes")
	flag.StringVar(&f.idPrefix, "id-prefix", "mb", "plugin id prefix")
	flag.StringVar(&f.label, "label", "", "copied to the output")
	flag.StringVar(&f.cgroupsPath, "cgroups-path", "", `linux.cgroupsPath: "" = unset, as moby's plugin spec; "ns" = /<namespace>/<id>, as the other tools'; anything else as is`)
	flag.StringVar(&f.logLevel, "log-level", "info", "logrus level (dockerd's default: info); the log itself is discarded")
	flag.IntVar(&f.n, "n", 200, "plugins")
	flag.IntVar(&f.c, "c", 8, "plugins at a time (stdio: 0 = all at once)")
	flag.Int64Var(&f.bytes, "bytes", 64<<20, "stdio: bytes each plugin writes")
	flag.DurationVar(&f.timeout, "timeout", 2*time.Minute, "longest wait for one plugin's exit")
	flag.DurationVar(&f.settle, "settle", time.Second, "steady: how long the plugins are held before measuring")
	flag.IntVar(&f.containerdPid, "containerd-pid", 0, "containerd's pid, for its CPU and RSS")
	flag.BoolVar(&f.observe, "observe", true, "a second /tasks/exit subscription, for the exit lag")
	flag.Parse()
	if f.address == "" || f.rootfs == "" || f.execRoot == "" {
		kit.Fail(tool, errors.New("-address, -rootfs and -exec-root are required"))
	}
	if f.runcRoot == "" {
		f.runcRoot = filepath.Join(f.execRoot, "runtime-"+f.runtimeBinary)
	}
	level, err := logrus.ParseLevel(f.logLevel)
	if err != nil {
		kit.Fail(tool, err)
	}
	logrus.SetLevel(level)
	logrus.SetOutput(io.Discard)
	if err := os.MkdirAll(f.execRoot, 0o700); err != nil {
		kit.Fail(tool, err)
	}

	// the client as dockerd makes it for plugins (daemon.go, createPluginExec)
	client, err := containerd.New(f.address, containerd.WithDefaultNamespace(f.namespace), containerd.WithTimeout(60*time.Second))
	if err != nil {
		kit.Fail(tool, err)
	}
	defer client.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	probeID := fmt.Sprintf("%s-probe-%d", f.idPrefix, os.Getpid())
	h := &handler{execRoot: f.execRoot, probeID: probeID, probed: make(chan struct{}),
		waiting: map[string]chan time.Time{}, early: map[string]time.Time{}, seen: map[string]bool{}}
	// dockerd's default runtime (daemon/runtime_unix.go, defaultV2ShimConfig)
	rt := types.Runtime{Path: f.runtimeBinary, Shim: &types.ShimConfig{
		Binary: "io.containerd.runc.v2",
		Opts:   &runcoptions.Options{BinaryName: f.runtimeBinary, Root: f.runcRoot},
	}}
	ex, err := pluginexec.New(ctx, f.execRoot, client, f.namespace, h, rt)
	if err != nil {
		kit.Fail(tool, err)
	}
	errs := &kit.Errors{}
	m := &mobybench{f: f, client: client, exec: ex, h: h, errs: errs}
	nsCtx := namespaces.WithNamespace(ctx, f.namespace)
	if f.observe {
		m.obs = &observer{probeID: probeID, probed: make(chan struct{}), published: map[string]time.Time{}}
		go m.obs.serve(nsCtx, client, f.namespace, errs)
	}
	if err := m.awaitSubscriptions(nsCtx); err != nil {
		kit.Fail(tool, err)
	}

	var out kit.Obj
	switch f.mode {
	case "lifecycle":
		out = m.lifecycle()
	case "stdio":
		out = m.stdio()
	case "steady":
		out = m.steady()
	default:
		kit.Fail(tool, fmt.Errorf("unknown -mode %q", f.mode))
	}
	kit.Emit(tool, out, errs)
}
