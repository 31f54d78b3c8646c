// gobench runs plugins as containers straight through containerd's Go
// client (Debian's golang-github-containerd-containerd-dev, the client moby
// is built on), the way a small Go service would do what plugind does:
//
//	NewContainer(WithNewSpec(rootfs dir, args), WithRuntime(runc v2 shim, Options{BinaryName, Root}))
//	NewTask(stdout/stderr FIFOs) -> Start
//	the exit arrives on our own /tasks/exit subscription
//	stdio drained -> task Delete -> container Delete
//
// Modes (-mode), one JSON object on stdout at the end:
//
//	lifecycle  -n plugins running /bin/true, -c at a time
//	stdio      -n plugins each writing -bytes to stdout, -c at a time (0: all at once)
//	steady     -n long-running plugins held, measured, then SIGTERM to all
//
// -io picks how stdout/stderr are read: streams (cio.NewCreator with
// WithStreams, containerd's own copier, as ctr does), direct (cio.NewDirectIO
// on a FIFO set read by our goroutines, as moby's libcontainerd does) or null
// (cio.NullIO, no FIFOs).
//
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
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/containerd/containerd"
	apievents "github.com/containerd/containerd/api/events"
	"github.com/containerd/containerd/cio"
	"github.com/containerd/containerd/containers"
	"github.com/containerd/containerd/events"
	"github.com/containerd/containerd/namespaces"
	"github.com/containerd/containerd/oci"
	"github.com/containerd/containerd/runtime/v2/runc/options"

	kit "plugind-bench/benchkit"
)

const tool = "gobench"

type flags struct {
	address, namespace, rootfs, mode, io      string
	runtime, runtimeBinary, runcRoot, fifoDir string
	cgroupsPath, writer, idPrefix, label      string
	n, c, containerdPid                       int
	bytes                                     int64
	timeout, settle                           time.Duration
}

// ---------------------------------------------------------------- exits

type exit struct {
	received, published, exitedAt time.Time
	status                        uint32
}

// router owns the one /tasks/exit subscription of the run and hands each
// container's exit to whoever waits for it (or keeps it until they do).
type router struct {
	mu        sync.Mutex
	waiting   map[string]chan exit
	early     map[string]exit
	seen      map[string]bool
	lag       []float64 // received - envelope timestamp (the shim's, when it published)
	lagExited []float64 // received - TaskExit.ExitedAt (when the shim reaped the process)
	dups      int
	probeID   string
	live      chan struct{}
	liveOnce  sync.Once
}

func newRouter(probeID string) *router {
	return &router{waiting: map[string]chan exit{}, early: map[string]exit{}, seen: map[string]bool{}, probeID: probeID, live: make(chan struct{})}
}

func (r *router) expect(id string) <-chan exit {
	ch := make(chan exit, 1)
	r.mu.Lock()
	defer r.mu.Unlock()
	if x, ok := r.early[id]; ok {
		delete(r.early, id)
		ch <- x
	} else {
		r.waiting[id] = ch
	}
	return ch
}

func (r *router) forget(id string) {
	r.mu.Lock()
	delete(r.waiting, id)
	r.mu.Unlock()
}

func (r *router) serve(ctx context.Context, envs <-chan *events.Envelope, errc <-chan error, errs *kit.Errors) {
	kit.ExitEvents(ctx, envs, errc, errs, r.probeID, func() { r.liveOnce.Do(func() { close(r.live) }) }, r.route)
}

func (r *router) route(te *apievents.TaskExit, published, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.seen[te.ContainerID] {
		r.dups++
		return
	}
	r.seen[te.ContainerID] = true
	x := exit{received: now, published: published, exitedAt: te.ExitedAt, status: te.ExitStatus}
	r.lag = append(r.lag, kit.Ms(now.Sub(published)))
	r.lagExited = append(r.lagExited, kit.Ms(now.Sub(te.ExitedAt)))
	if ch, ok := r.waiting[te.ContainerID]; ok {
		delete(r.waiting, te.ContainerID)
		ch <- x
	} else {
		r.early[te.ContainerID] = x
	}
}

func (r *router) report(out kit.Obj) {
	r.mu.Lock()
	defer r.mu.Unlock()
	out["exit_event_lag_ms"] = kit.Summary(r.lag)
	out["exit_event_lag_from_exited_at_ms"] = kit.Summary(r.lagExited)
	out["duplicate_exit_events"] = r.dups
}

// ---------------------------------------------------------------- stdio

type counter struct{ n int64 }

func (c *counter) Write(p []byte) (int, error) {
	atomic.AddInt64(&c.n, int64(len(p)))
	return len(p), nil
}
func (c *counter) bytes() int64 { return atomic.LoadInt64(&c.n) }

// drained is a cio.IO whose Wait also waits for our own readers.
type drained struct {
	cio.IO
	readers sync.WaitGroup
}

func (d *drained) Wait() { d.readers.Wait(); d.IO.Wait() }

func (g *gobench) creator(stdout, stderr io.Writer) cio.Creator {
	switch g.f.io {
	case "null":
		return cio.NullIO
	case "direct":
		return func(id string) (cio.IO, error) {
			if err := os.MkdirAll(g.f.fifoDir, 0o700); err != nil {
				return nil, err
			}
			dir, err := os.MkdirTemp(g.f.fifoDir, "")
			if err != nil {
				return nil, err
			}
			set := cio.NewFIFOSet(cio.Config{Stdout: filepath.Join(dir, id+"-stdout"), Stderr: filepath.Join(dir, id+"-stderr")},
				func() error { return os.RemoveAll(dir) })
			dio, err := cio.NewDirectIO(context.Background(), set)
			if err != nil {
				os.RemoveAll(dir)
				return nil, err
			}
			d := &drained{IO: dio}
			d.readers.Add(2)
			go func() { defer d.readers.Done(); io.CopyBuffer(stdout, dio.Stdout, make([]byte, 32<<10)) }()
			go func() { defer d.readers.Done(); io.CopyBuffer(stderr, dio.Stderr, make([]byte, 32<<10)) }()
			return d, nil
		}
	default:
		return cio.NewCreator(cio.WithStreams(nil, stdout, stderr), cio.WithFIFODir(g.f.fifoDir))
	}
}

// ---------------------------------------------------------------- one plugin

type gobench struct {
	f      *flags
	client *containerd.Client
	exits  *router
	errs   *kit.Errors
	rt     *options.Options
	seq    int64
}

type plugin struct {
	id             string
	ctr            containerd.Container
	task           containerd.Task
	exitc          <-chan exit
	stdout, stderr *counter
	exit           exit

	begin, ctrMade, taskMade, started time.Time
	exitSeen, drained, deleted        time.Time
}

func (g *gobench) spec(args []string) []oci.SpecOpts {
	opts := []oci.SpecOpts{oci.WithRootFSPath(g.f.rootfs), oci.WithProcessArgs(args...)}
	if g.f.cgroupsPath != "ns" {
		// "ns" keeps the client's /<namespace>/<id>; anything else goes in as is
		// ("" lets the runtime place the container, as moby's plugin spec does).
		path := g.f.cgroupsPath
		opts = append(opts, func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
			s.Linux.CgroupsPath = path
			return nil
		})
	}
	return opts
}

// start creates the container and its task, and starts it.
func (g *gobench) start(ctx context.Context, args []string) (*plugin, error) {
	p := &plugin{id: fmt.Sprintf("%s-%d-%d", g.f.idPrefix, os.Getpid(), atomic.AddInt64(&g.seq, 1)), stdout: &counter{}, stderr: &counter{}}
	p.exitc = g.exits.expect(p.id)
	p.begin = time.Now()
	ctr, err := g.client.NewContainer(ctx, p.id, containerd.WithNewSpec(g.spec(args)...), containerd.WithRuntime(g.f.runtime, g.rt))
	if err != nil {
		g.exits.forget(p.id)
		return nil, fmt.Errorf("new container %s: %w", p.id, err)
	}
	p.ctr, p.ctrMade = ctr, time.Now()
	task, err := ctr.NewTask(ctx, g.creator(p.stdout, p.stderr))
	if err != nil {
		g.exits.forget(p.id)
		ctr.Delete(ctx)
		return nil, fmt.Errorf("new task %s: %w", p.id, err)
	}
	p.task, p.taskMade = task, time.Now()
	if err := task.Start(ctx); err != nil {
		g.exits.forget(p.id)
		g.discard(ctx, p)
		return nil, fmt.Errorf("start %s: %w", p.id, err)
	}
	p.started = time.Now()
	return p, nil
}

func (g *gobench) waitExit(p *plugin) error {
	select {
	case p.exit = <-p.exitc:
		p.exitSeen = time.Now()
		return nil
	case <-time.After(g.f.timeout):
		return fmt.Errorf("%s: no exit within %s", p.id, g.f.timeout)
	}
}

// finish waits for the plugin's output to end, then deletes task and container.
func (g *gobench) finish(ctx context.Context, p *plugin) error {
	p.task.IO().Wait()
	p.drained = time.Now()
	var err error
	if _, e := p.task.Delete(ctx); e != nil {
		err = fmt.Errorf("delete task %s: %w", p.id, e)
		p.task.Delete(ctx, containerd.WithProcessKill)
	}
	if e := p.ctr.Delete(ctx); e != nil && err == nil {
		err = fmt.Errorf("delete container %s: %w", p.id, e)
	}
	p.deleted = time.Now()
	return err
}

// discard kills and removes what is left of a plugin that went wrong.
func (g *gobench) discard(ctx context.Context, p *plugin) {
	if p.task != nil {
		p.task.Delete(ctx, containerd.WithProcessKill)
	}
	if p.ctr != nil {
		p.ctr.Delete(ctx)
	}
}

// run is one whole short plugin: start, exit, finish. nil on failure.
func (g *gobench) run(ctx context.Context, args []string) *plugin {
	p, err := g.start(ctx, args)
	if err != nil {
		g.errs.Add(err)
		return nil
	}
	if err := g.waitExit(p); err != nil {
		g.errs.Add(err)
		g.discard(ctx, p)
		return nil
	}
	if err := g.finish(ctx, p); err != nil {
		g.errs.Add(err)
		return nil
	}
	return p
}

// ---------------------------------------------------------------- modes

func (g *gobench) header() kit.Obj {
	return kit.Obj{
		"label": g.f.label, "mode": g.f.mode, "n": g.f.n, "c": g.f.c, "io": g.f.io,
		"runtime": g.f.runtime, "runtime_binary": g.f.runtimeBinary, "cgroups_path": g.f.cgroupsPath,
	}
}

// collect runs n plugins c at a time and returns those that went through.
func (g *gobench) collect(ctx context.Context, n, c int, args []string) []*plugin {
	var mu sync.Mutex
	var done []*plugin
	kit.Pool(n, c, func(int) {
		if p := g.run(ctx, args); p != nil {
			mu.Lock()
			done = append(done, p)
			mu.Unlock()
		}
	})
	return done
}

func (g *gobench) lifecycle(ctx context.Context) kit.Obj {
	args := []string{"/bin/true"}
	fds := kit.OpenFDs()
	before := kit.SnapCPU(g.f.containerdPid)
	done := g.collect(ctx, g.f.n, g.f.c, args)
	after := kit.SnapCPU(g.f.containerdPid)

	var createStart, ctrCreate, taskCreate, taskStart, toExit, drain, del, total []float64
	nonzero := 0
	for _, p := range done {
		createStart = append(createStart, kit.Ms(p.started.Sub(p.begin)))
		ctrCreate = append(ctrCreate, kit.Ms(p.ctrMade.Sub(p.begin)))
		taskCreate = append(taskCreate, kit.Ms(p.taskMade.Sub(p.ctrMade)))
		taskStart = append(taskStart, kit.Ms(p.started.Sub(p.taskMade)))
		toExit = append(toExit, kit.Ms(p.exitSeen.Sub(p.started)))
		drain = append(drain, kit.Ms(p.drained.Sub(p.exitSeen)))
		del = append(del, kit.Ms(p.deleted.Sub(p.drained)))
		total = append(total, kit.Ms(p.deleted.Sub(p.begin)))
		if p.exit.status != 0 {
			nonzero++
		}
	}
	wall := after.Wall().Sub(before.Wall()).Seconds()
	out := g.header()
	out["args"] = args
	out["ok"] = len(done)
	out["nonzero_exit"] = nonzero
	out["wall_s"] = kit.R3(wall)
	out["throughput_per_s"] = kit.R3(float64(len(done)) / wall)
	out["create_start_ms"] = kit.Summary(createStart)
	out["container_create_ms"] = kit.Summary(ctrCreate)
	out["task_create_ms"] = kit.Summary(taskCreate)
	out["task_start_ms"] = kit.Summary(taskStart)
	out["start_to_exit_seen_ms"] = kit.Summary(toExit)
	out["io_drain_ms"] = kit.Summary(drain)
	out["delete_ms"] = kit.Summary(del)
	out["lifecycle_ms"] = kit.Summary(total)
	g.exits.report(out)
	out["cpu"] = kit.CPUReport(before, after)
	out["client_cpu_s_per_lifecycle"] = kit.PerItem(kit.ClientSeconds(before, after), len(done))
	out["client_open_fds_before"] = fds
	out["client_open_fds_after"] = kit.OpenFDs()
	out["client_rss_kb_end"] = kit.StatusKB("self", "VmRSS")
	return out
}

func (g *gobench) stdio(ctx context.Context) kit.Obj {
	args := kit.WriterArgs(g.f.writer, g.f.bytes)
	c := g.f.c
	if c <= 0 {
		c = g.f.n
	}
	before := kit.SnapCPU(g.f.containerdPid)
	done := g.collect(ctx, g.f.n, c, args)
	after := kit.SnapCPU(g.f.containerdPid)

	var total, stderrTotal int64
	var firstCreate, firstTask, last time.Time
	var perPlugin, drain []float64
	wrong := 0
	for _, p := range done {
		got := p.stdout.bytes()
		total += got
		stderrTotal += p.stderr.bytes()
		if got != g.f.bytes {
			wrong++
		}
		if firstCreate.IsZero() || p.begin.Before(firstCreate) {
			firstCreate = p.begin
		}
		if firstTask.IsZero() || p.taskMade.Before(firstTask) {
			firstTask = p.taskMade
		}
		if p.drained.After(last) {
			last = p.drained
		}
		perPlugin = append(perPlugin, float64(got)/1e6/p.drained.Sub(p.taskMade).Seconds())
		drain = append(drain, kit.Ms(p.drained.Sub(p.exitSeen)))
	}
	// Two windows: from the first task (its FIFOs open) and, as mobybench can
	// only see Executor.Create as a whole, from the first NewContainer.
	window := last.Sub(firstTask).Seconds()
	fromCreate := last.Sub(firstCreate).Seconds()
	wall := after.Wall().Sub(before.Wall()).Seconds()
	out := g.header()
	out["c"] = c
	out["writer"] = g.f.writer
	out["args"] = args
	out["ok"] = len(done)
	out["bytes_per_plugin"] = g.f.bytes
	out["expected_total_bytes"] = g.f.bytes * int64(g.f.n)
	out["total_bytes_received"] = total
	out["stderr_bytes_received"] = stderrTotal
	out["bytes_match"] = total == g.f.bytes*int64(g.f.n) && wrong == 0
	out["plugins_with_wrong_byte_count"] = wrong
	out["stream_window_s"] = kit.R3(window)
	out["aggregate_MBps"] = kit.R3(float64(total) / 1e6 / window)
	out["stream_window_from_create_s"] = kit.R3(fromCreate)
	out["aggregate_MBps_from_create"] = kit.R3(float64(total) / 1e6 / fromCreate)
	out["wall_s"] = kit.R3(wall)
	out["per_plugin_MBps"] = kit.Summary(perPlugin)
	out["io_drain_after_exit_ms"] = kit.Summary(drain)
	g.exits.report(out)
	out["cpu"] = kit.CPUReport(before, after)
	out["client_rss_kb_end"] = kit.StatusKB("self", "VmRSS")
	out["client_hwm_kb"] = kit.StatusKB("self", "VmHWM")
	return out
}

func (g *gobench) steady(ctx context.Context) kit.Obj {
	memBefore := kit.MemReport(g.f.address, g.f.containerdPid)
	avail0 := kit.MemAvailableKB()
	before := kit.SnapCPU(g.f.containerdPid)
	live := kit.StartAll(g.f.n, g.f.c, g.errs, func() (*plugin, error) { return g.start(ctx, kit.SteadyArgs) })
	created := kit.SnapCPU(g.f.containerdPid)
	var createStart []float64
	for _, p := range live {
		createStart = append(createStart, kit.Ms(p.started.Sub(p.begin)))
	}
	idle, memHeld := kit.Held(g.f.address, g.f.containerdPid, g.f.settle)
	availDrop := avail0 - kit.MemAvailableKB()

	// SIGTERM to every plugin, then wait for every exit event.
	tSig := time.Now()
	killErrs := kit.SignalAll(len(live), g.f.c, g.errs, func(i int) error {
		if err := live[i].task.Kill(ctx, syscall.SIGTERM); err != nil {
			return fmt.Errorf("kill %s: %w", live[i].id, err)
		}
		return nil
	})
	tSent := time.Now()
	var lastExit time.Time
	exited := 0
	for _, p := range live {
		if err := g.waitExit(p); err != nil {
			g.errs.Add(err)
			continue
		}
		exited++
		if p.exitSeen.After(lastExit) {
			lastExit = p.exitSeen
		}
	}
	tExited := time.Now()
	kit.Pool(len(live), g.f.c, func(i int) {
		p := live[i]
		if p.exitSeen.IsZero() {
			g.discard(ctx, p)
		} else if err := g.finish(ctx, p); err != nil {
			g.errs.Add(err)
		}
	})
	tDeleted := time.Now()
	after := kit.SnapCPU(g.f.containerdPid)

	out := g.header()
	kit.Steady{
		Started: len(live), Exited: exited,
		Before: before, Created: created, After: after,
		CreateStart: createStart, MemBefore: memBefore, MemHeld: memHeld, Idle: idle, AvailDropKB: availDrop,
		Signalled: tSig, AllSent: tSent, KillErrors: killErrs, Address: g.f.address,
	}.Report(out)
	if exited > 0 {
		out["sigterm_to_all_exit_events_s"] = kit.R3(lastExit.Sub(tSig).Seconds())
	}
	out["sigterm_to_all_exit_wait_done_s"] = kit.R3(tExited.Sub(tSig).Seconds())
	out["teardown_delete_s"] = kit.R3(tDeleted.Sub(tExited).Seconds())
	g.exits.report(out)
	return out
}

// ---------------------------------------------------------------- main

// awaitSubscription publishes a made-up exit until our own subscription
// has delivered it, so that no exit of the run can be missed.
func (g *gobench) awaitSubscription(ctx context.Context) error {
	deadline := time.After(10 * time.Second)
	for {
		ev := &apievents.TaskExit{ContainerID: g.exits.probeID, ID: g.exits.probeID, ExitedAt: time.Now()}
		if err := g.client.EventService().Publish(ctx, "/tasks/exit", ev); err != nil {
			return fmt.Errorf("publish probe: %w", err)
		}
		select {
		case <-g.exits.live:
			return nil
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			return errors.New("the /tasks/exit subscription never delivered")
		}
	}
}

func main() {
	f := &flags{}
	flag.StringVar(&f.address, "address", "", "containerd socket (required)")
	flag.StringVar(&f.namespace, "namespace", "bench-go", "containerd namespace")
	flag.StringVar(&f.rootfs, "rootfs", "", "absolute path of a busybox rootfs directory (required)")
	flag.StringVar(&f.mode, "mode", "lifecycle", "lifecycle | stdio | steady")
	flag.StringVar(&f.io, "io", "streams", "streams | direct | null (see the package comment)")
	flag.StringVar(&f.runtime, "runtime", "io.containerd.runc.v2", "containerd runtime (shim)")
	flag.StringVar(&f.runtimeBinary, "runtime-binary", "runc", "OCI runtime the runc v2 shim runs (its Options.BinaryName): runc, crun, ...")
	flag.StringVar(&f.runcRoot, "runc-root", "", "state root of the OCI runtime (Options.Root); empty: the shim's default")
	flag.StringVar(&f.fifoDir, "fifo-dir", "", "where the client's FIFOs are made (default: a directory under $TMPDIR)")
	flag.StringVar(&f.cgroupsPath, "cgroups-path", "ns", `linux.cgroupsPath: "ns" = the client's /<namespace>/<id>; "" = unset; anything else as is`)
	flag.StringVar(&f.writer, "writer", "head", "stdio: head (head -c B /dev/zero) | dd | yes")
	flag.StringVar(&f.idPrefix, "id-prefix", "gb", "container id prefix")
	flag.StringVar(&f.label, "label", "", "copied to the output")
	flag.IntVar(&f.n, "n", 200, "plugins")
	flag.IntVar(&f.c, "c", 8, "plugins at a time (stdio: 0 = all at once)")
	flag.Int64Var(&f.bytes, "bytes", 64<<20, "stdio: bytes each plugin writes")
	flag.DurationVar(&f.timeout, "timeout", 2*time.Minute, "longest wait for one plugin's exit")
	flag.DurationVar(&f.settle, "settle", time.Second, "steady: how long the plugins are held before measuring")
	flag.IntVar(&f.containerdPid, "containerd-pid", 0, "containerd's pid, for its CPU and RSS")
	flag.Parse()
	if f.address == "" || f.rootfs == "" {
		kit.Fail(tool, errors.New("-address and -rootfs are required"))
	}
	if f.fifoDir == "" {
		f.fifoDir = filepath.Join(os.TempDir(), "gobench-fifo")
	}

	client, err := containerd.New(f.address, containerd.WithDefaultNamespace(f.namespace), containerd.WithTimeout(30*time.Second))
	if err != nil {
		kit.Fail(tool, err)
	}
	defer client.Close()
	ctx, cancel := context.WithCancel(namespaces.WithNamespace(context.Background(), f.namespace))
	defer cancel()

	errs := &kit.Errors{}
	g := &gobench{f: f, client: client, errs: errs, exits: newRouter(fmt.Sprintf("%s-probe-%d", f.idPrefix, os.Getpid())),
		rt: &options.Options{BinaryName: f.runtimeBinary, Root: f.runcRoot}}
	envs, errc := client.EventService().Subscribe(ctx, `namespace==`+f.namespace+`,topic=="/tasks/exit"`)
	go g.exits.serve(ctx, envs, errc, errs)
	if err := g.awaitSubscription(ctx); err != nil {
		kit.Fail(tool, err)
	}

	var out kit.Obj
	switch f.mode {
	case "lifecycle":
		out = g.lifecycle(ctx)
	case "stdio":
		out = g.stdio(ctx)
	case "steady":
		out = g.steady(ctx)
	default:
		kit.Fail(tool, fmt.Errorf("unknown -mode %q", f.mode))
	}
	kit.Emit(tool, out, errs)
}
