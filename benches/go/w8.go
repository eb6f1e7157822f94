// Go reference for W8 (issue #16): W2's 100,000 tiny closures, submitted
// by 8 goroutines at once, each collecting its share in order, beside W2's
// single submitter in the same process. The other workloads' Go reference
// is ../shared/anchors/go/main.go; this file adds the one it lacks, in its
// style.
//
// Build and run it outside the repository (no go.mod needed):
//
//	go build -o "$TMPDIR/w8-go" benches/go/w8.go && "$TMPDIR/w8-go" [-reps 5]
package main

import (
	"flag"
	"fmt"
	"runtime"
	"sort"
	"sync"
	"time"
)

const (
	tasks      = 100_000
	submitters = 8
)

// submit runs n goroutines, each sending i*2 on its own buffered channel,
// and collects them in order.
func submit(n int) int {
	chans := make([]chan int, n)
	for i := 0; i < n; i++ {
		ch := make(chan int, 1)
		chans[i] = ch
		go func(i int) { ch <- i * 2 }(i)
	}
	sum := 0
	for _, ch := range chans {
		sum += <-ch
	}
	return sum
}

func eight() float64 {
	t := time.Now()
	var wg sync.WaitGroup
	for s := 0; s < submitters; s++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			submit(tasks / submitters)
		}()
	}
	wg.Wait()
	return float64(time.Since(t).Nanoseconds()) / tasks
}

func one() float64 {
	t := time.Now()
	submit(tasks)
	return float64(time.Since(t).Nanoseconds()) / tasks
}

func stats(f func() float64, reps int) (median, min, max float64) {
	f() // warm-up
	xs := make([]float64, reps)
	for i := range xs {
		runtime.GC()
		xs[i] = f()
	}
	sort.Float64s(xs)
	return xs[len(xs)/2], xs[0], xs[len(xs)-1]
}

func main() {
	reps := flag.Int("reps", 5, "timed repetitions per case")
	flag.Parse()
	fmt.Printf("w8-go: %s GOMAXPROCS=%d NumCPU=%d reps=%d (median of reps; min/max over reps)\n\n",
		runtime.Version(), runtime.GOMAXPROCS(0), runtime.NumCPU(), *reps)
	fmt.Println("| workload | implementation | median | unit | min | max | reps |")
	fmt.Println("|---|---|---:|---|---:|---:|---:|")
	for _, c := range []struct {
		name string
		f    func() float64
	}{
		{"go: 8 goroutines submitting, goroutine + buffered chan", eight},
		{"go: 1 submitter (W2), goroutine + buffered chan", one},
	} {
		m, lo, hi := stats(c.f, *reps)
		fmt.Printf("| W8 eight submitters | %s | %.1f | ns/task | %.1f | %.1f | %d |\n", c.name, m, lo, hi, *reps)
	}
}
