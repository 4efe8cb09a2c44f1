// gostack: how big the real Go runtime makes a goroutine's stack when it recurses to a given depth.
//
// Usage: gostack VARIANT DEPTH [DEPTH...]   (VARIANT: small, medium or large; see the rec* functions)
//
// For each depth, a fresh goroutine runs entry<VARIANT>(), which calls rec<VARIANT>(depth): depth+1 frames of
// one known size (the $F of `TEXT main.recX(SB), ABIInternal, $F-8` in `go build -gcflags=-S` output, read by
// bench/real/gostacks.py from the build log).  At depth 0 rec calls probe(), a nosplit function (no stack check,
// so it cannot grow the stack), which finds its own goroutine among the runtime's goroutines (runtime.allgs,
// linked by name; the first field of a g is its stack [lo, hi)) by the address of one of its locals, and
// records the stack's bounds and that address.  The goroutine then returns to entry, which parks on a channel
// while main reads MemStats.StackInuse (the bytes of stack spans in use) for the delta over the reading taken
// before the goroutine started; main waits for it to exit before the next depth.  Stacks of 32 KiB and more
// have spans of their own, so for them the delta is the stack's size; smaller ones share 32 KiB spans.
//
// Run it with GOGC=off (no collection: no shrinking, and the adaptive starting size never moves from 2 KiB)
// and GOMAXPROCS=1.  Output: one JSON object {"go_version", "variant", "runs": [{"depth", "stack_lo",
// "stack_hi", "stack_bytes", "probe_used", "stackinuse_delta"}, ...]}.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"unsafe"
)

//go:linkname allgs runtime.allgs
var allgs []unsafe.Pointer

var (
	depth            int
	stackLo, stackHi uintptr
	probeAt          uintptr
	ready            = make(chan int)
	release          = make(chan int)
	sink             int
)

//go:nosplit
//go:noinline
func probe() {
	var local uintptr
	at := uintptr(unsafe.Pointer(&local))
	for _, gp := range allgs {
		lo := *(*uintptr)(gp)
		hi := *(*uintptr)(unsafe.Pointer(uintptr(gp) + unsafe.Sizeof(uintptr(0))))
		if lo <= at && at < hi {
			stackLo, stackHi, probeAt = lo, hi, at
			return
		}
	}
}

// Frames of three sizes: small (F <= StackSmall = 128: the check compares the SP itself with the guard),
// medium (128 < F <= StackBig = 4096) and large (F > 4096: the check guards against wrap-around).

func recSmall(d int) int {
	var a [16]byte
	a[d&15] = byte(d)
	if d == 0 {
		probe()
		return int(a[0])
	}
	return recSmall(d-1) + int(a[(d*7)&15])
}

func recMedium(d int) int {
	var a [512]byte
	a[d&511] = byte(d)
	if d == 0 {
		probe()
		return int(a[0])
	}
	return recMedium(d-1) + int(a[(d*7)&511])
}

func recLarge(d int) int {
	var a [6000]byte
	a[d%6000] = byte(d)
	if d == 0 {
		probe()
		return int(a[0])
	}
	return recLarge(d-1) + int(a[(d*7)%6000])
}

func park(result int) {
	sink += result
	ready <- 1
	<-release
}

func entrySmall()  { park(recSmall(depth)) }
func entryMedium() { park(recMedium(depth)) }
func entryLarge()  { park(recLarge(depth)) }

type run struct {
	Depth           int     `json:"depth"`
	StackLo         uintptr `json:"stack_lo"`
	StackHi         uintptr `json:"stack_hi"`
	StackBytes      uintptr `json:"stack_bytes"`
	ProbeUsed       uintptr `json:"probe_used"`
	StackInuseDelta int64   `json:"stackinuse_delta"`
}

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: gostack small|medium|large DEPTH [DEPTH...]")
		os.Exit(2)
	}
	entries := map[string]func(){"small": entrySmall, "medium": entryMedium, "large": entryLarge}
	entry, ok := entries[os.Args[1]]
	if !ok {
		fmt.Fprintf(os.Stderr, "gostack: unknown variant %q (small, medium, large)\n", os.Args[1])
		os.Exit(2)
	}
	var runs []run
	var stats runtime.MemStats
	for _, text := range os.Args[2:] {
		d, err := strconv.Atoi(text)
		if err != nil || d < 0 {
			fmt.Fprintf(os.Stderr, "gostack: bad depth %q\n", text)
			os.Exit(2)
		}
		depth = d
		stackLo, stackHi, probeAt = 0, 0, 0
		runtime.ReadMemStats(&stats)
		before := int64(stats.StackInuse)
		go entry()
		<-ready
		runtime.ReadMemStats(&stats)
		after := int64(stats.StackInuse)
		release <- 1
		for runtime.NumGoroutine() > 1 { // let it exit (its stack freed) before the next reading
			runtime.Gosched()
		}
		if stackHi == 0 {
			fmt.Fprintln(os.Stderr, "gostack: the probe did not find its goroutine's stack")
			os.Exit(1)
		}
		runs = append(runs, run{Depth: d, StackLo: stackLo, StackHi: stackHi, StackBytes: stackHi - stackLo,
			ProbeUsed: stackHi - probeAt, StackInuseDelta: after - before})
	}
	out, _ := json.Marshal(map[string]any{"go_version": runtime.Version(), "variant": os.Args[1], "runs": runs})
	fmt.Println(string(out))
}
