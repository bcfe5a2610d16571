package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

// machine is what the report says about where it ran.
type machine struct {
	cpus     int
	cpuModel string
	memory   string // free -h
	kernel   string
	goVer    string
	disk     string // df -h of the work directory, and its file system type
	commit   string // the weft tree measured
	restate  string // how restate-server was found
	netns    bool
}

const restateVersion = "1.7.12"

func describeMachine(workDir, benchDir string) *machine {
	m := &machine{cpus: runtime.NumCPU(), goVer: runtime.Version()}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		s := bufio.NewScanner(f)
		for s.Scan() {
			if k, v, ok := strings.Cut(s.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.cpuModel = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	m.memory = output("free", "-h")
	m.kernel = output("uname", "-srm")
	if out := output("go", "version"); out != "" {
		m.goVer = out
	}
	df := output("df", "-h", "--output=source,fstype,size,avail,target", workDir)
	m.disk = df
	commit := output("git", "-C", filepath.Dir(benchDir), "rev-parse", "--short", "HEAD")
	if commit != "" && output("git", "-C", filepath.Dir(benchDir), "status", "--porcelain", "--untracked-files=no") != "" {
		commit += " with uncommitted changes"
	}
	m.commit = commit
	return m
}

func output(name string, args ...string) string {
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// ensureRestate returns a restate-server binary: the one given, or the one the
// npm package @restatedev/restate-server@1.7.12 ships, installed (once) into
// bench/.restate with install scripts off.
func ensureRestate(benchDir, given string) (path, note string, err error) {
	if given != "" {
		if _, err := os.Stat(given); err != nil {
			return "", "", fmt.Errorf("restate-server %s: %w", given, err)
		}
		return given, "given with -restate-server: " + given + " (" + output(given, "--version") + ")", nil
	}
	prefix := filepath.Join(benchDir, ".restate")
	arch := map[string]string{"amd64": "x64", "arm64": "arm64"}[runtime.GOARCH]
	if runtime.GOOS != "linux" || arch == "" {
		return "", "", fmt.Errorf("the npm package ships restate-server for linux-x64 and linux-arm64 only (this is %s/%s)", runtime.GOOS, runtime.GOARCH)
	}
	bin := filepath.Join(prefix, "node_modules", "@restatedev", "restate-server-linux-"+arch, "bin", "restate-server")
	if v := output(bin, "--version"); !strings.Contains(v, restateVersion) {
		if _, err := exec.LookPath("npm"); err != nil {
			return "", "", errors.New("npm is not installed: it is needed to install @restatedev/restate-server@" + restateVersion)
		}
		logf("installing @restatedev/restate-server@%s with npm into %s", restateVersion, prefix)
		cmd := exec.Command("npm", "install", "--prefix", prefix, "--ignore-scripts", "--no-audit", "--no-fund",
			"--no-save", "@restatedev/restate-server@"+restateVersion)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return "", "", fmt.Errorf("npm install @restatedev/restate-server@%s: %w", restateVersion, err)
		}
		if v := output(bin, "--version"); !strings.Contains(v, restateVersion) {
			return "", "", fmt.Errorf("after npm install, %s --version says %q, not %s", bin, v, restateVersion)
		}
	}
	rel, _ := filepath.Rel(filepath.Dir(benchDir), bin)
	return bin, fmt.Sprintf("npm package @restatedev/restate-server@%s (installed with --ignore-scripts), binary %s (%s)", restateVersion, rel, output(bin, "--version")), nil
}
