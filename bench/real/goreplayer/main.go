// Go replayer: replays a trace on the real Go heap and reads the runtime's own heap metrics.
//
// bench/real/go.py builds this file with `go build` once per source version into the lab's cache and runs it
// with GOGC and GOMAXPROCS set (GOMAXPROCS=1 by default, so the collector's pacing does not depend on the
// machine's cores).
//
// Usage: goreplayer OP_FILE OBJ_FILE SIZE_FILE N_IDS SAMPLE_EVERY
//
//	OP_FILE: int8 per row (0 alloc, 1 free, 2 realloc, 3 access); OBJ_FILE: int64 dense object id
//	(0..N_IDS-1) per row; SIZE_FILE: int64 per row.
//
// ALLOC makes a pointer-free []byte of the size (make: zeroed, so every page is touched as a program's would
// be); FREE drops the reference; REALLOC makes a new slice, copies min(old, new) bytes and drops the old one;
// ACCESS writes the block's first byte.  Nothing else the replayer keeps sits on the measured heap beside
// the trace's blocks: the columns and the size table are mmap'ed outside it, and the one table of references
// the collector must see (one unsafe.Pointer per object id) is allocated once before the baseline, and its
// bytes are reported (`table_bytes`) so the caller can take them off.
//
// Every SAMPLE_EVERY rows, and after the last one, it reads runtime/metrics:
//
//	/memory/classes/heap/objects:bytes   live and not yet swept objects
//	/memory/classes/heap/unused:bytes    free slots in spans that hold objects
//	/memory/classes/heap/free:bytes      free pages still mapped
//	/memory/classes/heap/released:bytes  free pages returned to the OS
//	/gc/heap/goal:bytes, /gc/cycles/total:gc-cycles, /gc/heap/objects:objects
//
// In-use heap (Go's HeapInuse) = objects + unused; mapped heap = in-use + free + released.  Output: one JSON
// object on stdout with the peaks over the samples, the final values, and the samples themselves.  Bad usage
// or input: a message on stderr and exit status 2.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
	"syscall"
	"unsafe"
)

var names = []string{
	"/memory/classes/heap/objects:bytes",
	"/memory/classes/heap/unused:bytes",
	"/memory/classes/heap/free:bytes",
	"/memory/classes/heap/released:bytes",
	"/gc/heap/goal:bytes",
	"/gc/cycles/total:gc-cycles",
	"/gc/heap/objects:objects",
}

type sample struct {
	Row        int64  `json:"row"`
	Objects    uint64 `json:"heap_objects_bytes"`
	Unused     uint64 `json:"heap_unused_bytes"`
	Free       uint64 `json:"heap_free_bytes"`
	Released   uint64 `json:"heap_released_bytes"`
	Goal       uint64 `json:"heap_goal_bytes"`
	Cycles     uint64 `json:"gc_cycles"`
	NumObjects uint64 `json:"heap_object_count"`
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "goreplayer: "+format+"\n", args...)
	os.Exit(2)
}

// mapFile maps a column file read-only, outside the Go heap.
func mapFile(path string, itemSize int) ([]byte, int) {
	file, err := os.Open(path)
	if err != nil {
		fail("cannot open %s: %v", path, err)
	}
	defer file.Close()
	info, err := file.Stat()
	if err != nil {
		fail("cannot stat %s: %v", path, err)
	}
	size := int(info.Size())
	if size%itemSize != 0 {
		fail("%s: %d bytes is not a whole number of %d-byte items", path, size, itemSize)
	}
	if size == 0 {
		return nil, 0
	}
	data, err := syscall.Mmap(int(file.Fd()), 0, size, syscall.PROT_READ, syscall.MAP_PRIVATE)
	if err != nil {
		fail("cannot map %s: %v", path, err)
	}
	return data, size / itemSize
}

// anonymous maps zeroed memory outside the Go heap.
func anonymous(size int) []byte {
	if size == 0 {
		size = 8
	}
	data, err := syscall.Mmap(-1, 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
	if err != nil {
		fail("cannot map %d bytes: %v", size, err)
	}
	return data
}

func read(samples []metrics.Sample, row int64) sample {
	metrics.Read(samples)
	return sample{
		Row: row, Objects: samples[0].Value.Uint64(), Unused: samples[1].Value.Uint64(),
		Free: samples[2].Value.Uint64(), Released: samples[3].Value.Uint64(), Goal: samples[4].Value.Uint64(),
		Cycles: samples[5].Value.Uint64(), NumObjects: samples[6].Value.Uint64(),
	}
}

func main() {
	if len(os.Args) != 6 {
		fail("usage: goreplayer OP_FILE OBJ_FILE SIZE_FILE N_IDS SAMPLE_EVERY")
	}
	opBytes, rows := mapFile(os.Args[1], 1)
	objBytes, objRows := mapFile(os.Args[2], 8)
	sizeBytes, sizeRows := mapFile(os.Args[3], 8)
	nIDs, err := strconv.Atoi(os.Args[4])
	if err != nil || nIDs < 0 {
		fail("N_IDS must be a non-negative integer, got %q", os.Args[4])
	}
	every, err := strconv.Atoi(os.Args[5])
	if err != nil || every < 1 {
		fail("SAMPLE_EVERY must be a positive integer, got %q", os.Args[5])
	}
	if objRows != rows || sizeRows != rows {
		fail("columns of different lengths: %d ops, %d objs, %d sizes", rows, objRows, sizeRows)
	}
	var op []int8
	var obj, size []int64
	if rows > 0 {
		op = unsafe.Slice((*int8)(unsafe.Pointer(&opBytes[0])), rows)
		obj = unsafe.Slice((*int64)(unsafe.Pointer(&objBytes[0])), rows)
		size = unsafe.Slice((*int64)(unsafe.Pointer(&sizeBytes[0])), rows)
	}
	for row := 0; row < rows; row++ { // check everything before the first allocation
		if op[row] < 0 || op[row] > 3 {
			fail("row %d: op %d is not 0..3", row, op[row])
		}
		if obj[row] < 0 || obj[row] >= int64(nIDs) {
			fail("row %d: object %d outside 0..%d", row, obj[row], nIDs-1)
		}
		if (op[row] == 0 || op[row] == 2) && (size[row] < 1 || size[row] > 1<<40) {
			fail("row %d: size %d outside 1..2^40", row, size[row])
		}
	}
	current := unsafe.Slice((*int64)(unsafe.Pointer(&anonymous(8 * nIDs)[0])), nIDs)
	table := make([]unsafe.Pointer, nIDs) // the one table on the heap: every live block's reference
	tableBytes := 8 * nIDs
	samples := make([]metrics.Sample, len(names))
	for index, name := range names {
		samples[index].Name = name
	}
	recorded := make([]sample, 0, rows/every+2)
	runtime.GC()
	baseline := read(samples, -1)
	peakInuse, peakMapped, peakObjects := uint64(0), uint64(0), uint64(0)
	note := func(s sample) {
		recorded = append(recorded, s)
		inuse := s.Objects + s.Unused
		if inuse > peakInuse {
			peakInuse = inuse
		}
		if mapped := inuse + s.Free + s.Released; mapped > peakMapped {
			peakMapped = mapped
		}
		if s.Objects > peakObjects {
			peakObjects = s.Objects
		}
	}
	for row := 0; row < rows; row++ {
		id := obj[row]
		switch op[row] {
		case 0:
			block := make([]byte, size[row])
			table[id] = unsafe.Pointer(&block[0])
			current[id] = size[row]
		case 1:
			table[id] = nil
			current[id] = 0
		case 2:
			block := make([]byte, size[row])
			if table[id] != nil {
				keep := current[id]
				if size[row] < keep {
					keep = size[row]
				}
				copy(block, unsafe.Slice((*byte)(table[id]), keep))
			}
			table[id] = unsafe.Pointer(&block[0])
			current[id] = size[row]
		default:
			if table[id] != nil {
				*(*byte)(table[id]) = 2
			}
		}
		if (row+1)%every == 0 {
			note(read(samples, int64(row)))
		}
	}
	if rows%every != 0 || rows == 0 {
		note(read(samples, int64(rows)-1))
	}
	final := recorded[len(recorded)-1]
	runtime.KeepAlive(table)
	output := map[string]interface{}{
		"go_version": runtime.Version(), "gomaxprocs": runtime.GOMAXPROCS(0), "gogc": os.Getenv("GOGC"),
		"rows": rows, "table_bytes": tableBytes, "baseline": baseline,
		"peak_heap_inuse_bytes": peakInuse, "peak_heap_mapped_bytes": peakMapped,
		"peak_heap_objects_bytes": peakObjects, "gc_cycles": final.Cycles - baseline.Cycles,
		"final_heap_goal_bytes": final.Goal, "samples": recorded,
	}
	encoded, err := json.Marshal(output)
	if err != nil {
		fail("cannot encode the result: %v", err)
	}
	os.Stdout.Write(append(encoded, '\n'))
}
