package chaostest

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// Paths of the child binaries, built without -race by TestMain: only the
// test process runs under the race detector.
var (
	workerBin   string
	producerBin string
)

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		os.Exit(m.Run()) // the tests skip themselves
	}
	dir, err := os.MkdirTemp("", "chaostest-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaostest:", err)
		os.Exit(1)
	}
	if err := build(dir); err != nil {
		fmt.Fprintln(os.Stderr, "chaostest:", err)
		_ = os.RemoveAll(dir)
		os.Exit(1)
	}
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("github.com/redis/go-redis/v9/internal/pool.(*ConnPool).reaper"),
		goleak.Cleanup(func(code int) {
			_ = os.RemoveAll(dir)
			os.Exit(code)
		}))
}

// build compiles the chaos worker and the producer into dir.
func build(dir string) error {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return fmt.Errorf("the go command is needed to build the child processes: %w", err)
	}
	begin := time.Now()
	cmd := exec.Command(goBin, "build", "-o", dir+string(os.PathSeparator), "./chaosworker", "./producer")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./chaosworker ./producer: %w\n%s", err, out)
	}
	workerBin = filepath.Join(dir, "chaosworker")
	producerBin = filepath.Join(dir, "producer")
	if testing.Verbose() {
		fmt.Printf("chaostest: built the worker and producer binaries in %s\n", time.Since(begin).Round(time.Millisecond))
	}
	return nil
}
