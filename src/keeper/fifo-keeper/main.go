// The FIFO keeper: a small process apart from plugind, which outlives it,
// holding a read end of every plugin FIFO under one root and never reading.
//
// What is in a pipe lives only while someone holds it. A plugin that writes
// and exits while no plugind runs (killed, or restarting) has its shim close
// the write end; with no reader left either, the kernel would drop those last
// words. Held by the keeper, they wait in the pipe for the next plugind,
// which reads them and then sees EOF as usual (EOF needs no writer; the
// keeper is none).
//
// It rescans the root when it changes (inotify) and every scanEvery: opens
// the FIFOs of sets that appeared (<root>/<set>/{stdout,stderr}, dot-names
// are pools and left alone), closes those of sets gone (removed, or renamed
// back into a pool). It exits when the root is gone or on SIGTERM (SIGINT),
// and writes its pid to the pid file it is given, which it removes on the
// way out only while the file still names it.
//
// It is a Go program, not a Node one, so that holding a few thousand fds
// costs about a megabyte instead of a V8 heap. Standard library only; built
// static by scripts/setup.sh into build/plugind-fifo-keeper.
//
// Usage: plugind-fifo-keeper <fifo root> <pid file> (started by keeper.ts)
package main

import (
	"bytes"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"
)

const (
	// The rescan that catches whatever inotify did not tell.
	scanEvery = 2 * time.Second
	// A burst of changes (a batch of creates) makes one scan.
	settle = 10 * time.Millisecond
	// What a change of the root's entries is made of: a set renamed in from
	// a pool or out to one, made, removed; and the root itself going.
	watchMask = syscall.IN_CREATE | syscall.IN_DELETE | syscall.IN_MOVED_FROM | syscall.IN_MOVED_TO |
		syscall.IN_DELETE_SELF | syscall.IN_MOVE_SELF | syscall.IN_ONLYDIR
	selfMask = syscall.IN_DELETE_SELF | syscall.IN_MOVE_SELF | syscall.IN_IGNORED
)

var streams = [...]string{"stdout", "stderr"}

// The fds held for a set's FIFOs, and the last scan that saw it.
type set struct {
	fds  [len(streams)]int
	seen uint64
}

type keeper struct {
	root, pidFile string
	// Set name → what is held for it.
	held map[string]*set
	gen  uint64
	// getdents' buffer, the same for every scan.
	dirents []byte
	// inotify: its fd and the watch on root (-1: none).
	ino, wd int
}

func main() {
	if len(os.Args) < 3 || os.Args[1] == "" || os.Args[2] == "" {
		fmt.Fprintln(os.Stderr, "usage: plugind-fifo-keeper <fifo root> <pid file>")
		os.Exit(2)
	}
	k := &keeper{root: os.Args[1], pidFile: os.Args[2], held: map[string]*set{}, dirents: make([]byte, 32*1024), ino: -1, wd: -1}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	raiseFdLimit()
	// plugind's shard workers make the root too, with the same mode.
	if err := os.MkdirAll(k.root, 0o700); err != nil {
		fmt.Fprintln(os.Stderr, "plugind-fifo-keeper:", err)
		os.Exit(1)
	}
	// Watched before the first scan, so that no set made in between is missed.
	changes := make(chan change)
	k.watch(changes)
	k.scan()
	// Written once every set there is held: a plugind that finds the pid
	// file naming us knows they are.
	if err := os.WriteFile(k.pidFile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o666); err != nil {
		fmt.Fprintln(os.Stderr, "plugind-fifo-keeper:", err)
		os.Exit(1)
	}
	tick := time.NewTicker(scanEvery)
	var soon <-chan time.Time
	rewatch := false
	for {
		select {
		case <-sigs:
			k.stop()
		case c := <-changes:
			for _, wd := range c.self {
				// Not the IN_IGNORED of a watch rewatch itself removed.
				rewatch = rewatch || int(wd) == k.wd
			}
			if soon == nil {
				soon = time.After(settle)
			}
		case <-soon:
			soon = nil
			// The root gone: scan stops. Made again: watch the new one.
			k.scan()
			if rewatch {
				rewatch = false
				k.rewatch()
			}
		case <-tick.C:
			k.scan()
		}
	}
}

// Each held FIFO is an fd: allow as many as the hard limit does (as Node
// does at start, and Go from 1.19 on; said here so it does not depend on it).
func raiseFdLimit() {
	var l syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l) == nil && l.Cur < l.Max {
		l.Cur = l.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
	}
}

// What one read of inotify told: entries of the root changed, or the root
// itself went (removed or moved) under the watches named.
type change struct {
	entries bool
	self    []int32
}

// Starts telling changes of the root on changes. Without inotify (out of
// instances or watches) the periodic rescan alone keeps the sets held.
func (k *keeper) watch(changes chan<- change) {
	fd, err := syscall.InotifyInit1(syscall.IN_CLOEXEC)
	if err != nil {
		return
	}
	k.ino = fd
	k.rewatch()
	go func() {
		buf := make([]byte, 64*1024)
		for {
			n, err := syscall.Read(fd, buf)
			if err == syscall.EINTR {
				continue
			}
			if err != nil || n <= 0 {
				return
			}
			var c change
			for off := 0; off+syscall.SizeofInotifyEvent <= n; {
				ev := (*syscall.InotifyEvent)(unsafe.Pointer(&buf[off]))
				name := buf[off+syscall.SizeofInotifyEvent : off+syscall.SizeofInotifyEvent+int(ev.Len)]
				off += syscall.SizeofInotifyEvent + int(ev.Len)
				switch {
				case ev.Mask&selfMask != 0:
					c.self = append(c.self, ev.Wd)
				case ev.Mask&syscall.IN_Q_OVERFLOW != 0:
					c.entries = true
				case len(name) > 0 && name[0] != '.':
					// Dot-names are pools: what happens in them is no set's.
					c.entries = true
				}
			}
			if c.entries || len(c.self) > 0 {
				changes <- c
			}
		}
	}()
}

// (Re)places the watch on the root as it is now.
func (k *keeper) rewatch() {
	if k.ino < 0 {
		return
	}
	if k.wd >= 0 {
		_, _ = syscall.InotifyRmWatch(k.ino, uint32(k.wd))
		k.wd = -1
	}
	if wd, err := syscall.InotifyAddWatch(k.ino, k.root, watchMask); err == nil {
		k.wd = wd
	}
}

// Every scanEvery, for thousands of sets: it allocates nothing for sets
// already held (names read into one buffer, looked up without a copy), so
// the heap stays put instead of growing to the collector's first target.
func (k *keeper) scan() {
	dir, err := syscall.Open(k.root, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
	if err != nil {
		k.stop()
	}
	defer syscall.Close(dir)
	k.gen++
	for {
		n, err := syscall.ReadDirent(dir, k.dirents)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			k.stop()
		}
		if n <= 0 {
			break
		}
		// struct linux_dirent64: ino u64, off s64, reclen u16, type u8, name.
		for off := 0; off+19 < n; {
			reclen := int(*(*uint16)(unsafe.Pointer(&k.dirents[off+16])))
			name := k.dirents[off+19 : off+reclen]
			off += reclen
			if i := bytes.IndexByte(name, 0); i >= 0 {
				name = name[:i]
			}
			// Dot-names are pools (and . and ..).
			if len(name) == 0 || name[0] == '.' {
				continue
			}
			if set, ok := k.held[string(name)]; ok {
				set.seen = k.gen
				continue
			}
			if fds, ok := holdSet(filepath.Join(k.root, string(name))); ok {
				k.held[string(name)] = &set{fds: fds, seen: k.gen}
			}
			// Otherwise not (yet) a complete set: the next scan looks again.
		}
	}
	for name, set := range k.held {
		if set.seen == k.gen {
			continue
		}
		for _, fd := range set.fds {
			syscall.Close(fd)
		}
		delete(k.held, name)
	}
}

// Opens a set's FIFOs for reading without blocking: at once, writer or not.
func holdSet(dir string) (fds [len(streams)]int, ok bool) {
	for i, stream := range streams {
		fd, err := syscall.Open(filepath.Join(dir, stream), syscall.O_RDONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
		if err != nil {
			for _, f := range fds[:i] {
				syscall.Close(f)
			}
			return fds, false
		}
		fds[i] = fd
	}
	return fds, true
}

func (k *keeper) stop() {
	// The pid file is ours to remove only while it names us.
	if b, err := os.ReadFile(k.pidFile); err == nil && strings.TrimSpace(string(b)) == strconv.Itoa(os.Getpid()) {
		os.Remove(k.pidFile)
	}
	os.Exit(0)
}
