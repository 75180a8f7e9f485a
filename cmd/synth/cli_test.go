package main

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"synth/dataset"
	"synth/internal/fixtures"
)

// A missing required flag is one line naming it, not the command's help.
func TestMissingRequiredFlagIsOneLine(t *testing.T) {
	for _, args := range [][]string{{"caption"}, {"rewrite", "--model", "m.gguf"}, {"eval", "--model", "m.pt"}, {"pipeline"}, {"embed", "--text", "x"}} {
		code, out, errOut := runCLI(t, args...)
		lines := strings.Split(strings.TrimSpace(errOut), "\n")
		if code != exitUsage || len(lines) != 1 || !strings.Contains(errOut, "is required") || out != "" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit 2 and one line", args, code, out, errOut)
		}
	}
}

func TestHelpAndSuggestions(t *testing.T) {
	code, out, errOut := runCLI(t, "help", "caption")
	if code != exitOK || !strings.Contains(out, "--max-new-tokens") || !strings.Contains(out, "--repeat-penalty") {
		t.Errorf("synth help caption: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"captoin"}, `did you mean "caption"?`},
		{[]string{"caption", "--modle", "x"}, "did you mean --model?"},
		{[]string{"rewrite", "--max-tokns", "3"}, "did you mean --max-tokens?"},
	} {
		code, _, errOut := runCLI(t, c.args...)
		if code != exitUsage || !strings.Contains(errOut, c.want) || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
			t.Errorf("%v: exit %d, stderr %q; want one line with %q", c.args, code, errOut, c.want)
		}
	}
}

// buildSynth builds the command once for the tests that run it as a process.
func buildSynth(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "synth")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// Ctrl-C (SIGINT) stops a command with exit code 130.
func TestInterruptExits130(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: builds the binary")
	}
	bin := buildSynth(t)
	dir := t.TempDir()
	if err := dataset.WriteMetadata(filepath.Join(dir, "captioned"), []dataset.Row{{FileName: "a.png", Dataset: "captioned", ID: "p"}}); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "view", "--serve", "127.0.0.1:0", dir)
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	deadline := time.AfterFunc(time.Minute, func() { cmd.Process.Kill() })
	defer deadline.Stop()
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "serving http://127.0.0.1:") {
			break
		}
	}
	cmd.Process.Signal(syscall.SIGINT)
	err := cmd.Wait()
	if cmd.ProcessState.ExitCode() != exitInterrupted {
		t.Errorf("after SIGINT: %v, exit %d, want %d", err, cmd.ProcessState.ExitCode(), exitInterrupted)
	}
}

// caption honours --log-format json and --quiet, stops a rerun with other settings in
// one line saying what changed, and recomputes with --force.
func TestCaptionRerunLogsAndForce(t *testing.T) {
	for _, set := range fixtures.Sets(t, "blip2", "expected.safetensors") {
		modelDir, imgDir, _ := captionSetup(t, set)
		out := filepath.Join(t.TempDir(), "c.jsonl")
		args := []string{"--log-format", "json", "caption", "--model", modelDir, "--images", imgDir, "--out", out, "--max-new-tokens", "3"}
		code, stdout, errOut := runCLI(t, args...)
		if code != exitOK || !strings.Contains(stdout, "caption: 3 images, 3 records (1 failed)") {
			t.Fatalf("exit %d, stdout %q: %s", code, stdout, errOut)
		}
		for _, l := range strings.Split(strings.TrimSpace(errOut), "\n") {
			if !json.Valid([]byte(l)) {
				t.Errorf("--log-format json: stderr line %q is not JSON", l)
			}
		}
		if !strings.Contains(errOut, `"msg":"caption finished"`) {
			t.Errorf("no progress summary line without --quiet:\n%s", errOut)
		}
		code, _, errOut = runCLI(t, "--quiet", "caption", "--model", modelDir, "--images", imgDir, "--out", filepath.Join(t.TempDir(), "q.jsonl"), "--max-new-tokens", "3")
		if code != exitOK || strings.Contains(errOut, "caption finished") {
			t.Errorf("--quiet: exit %d, progress shown:\n%s", code, errOut)
		}

		// issue 17: synth caption --beams 2 on an existing --out used to do nothing
		beams := []string{"caption", "--model", modelDir, "--images", imgDir, "--out", out, "--max-new-tokens", "3", "--beams", "2"}
		code, _, errOut = runCLI(t, beams...)
		if code != exitRuntime || !strings.Contains(errOut, "num_beams 1 -> 2") || !strings.Contains(errOut, "--force") || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
			t.Errorf("--beams 2 on an existing output: exit %d, stderr %q; want one line saying num_beams 1 -> 2", code, errOut)
		}
		if code, _, errOut = runCLI(t, append(beams, "--force")...); code != exitOK {
			t.Fatalf("--force: exit %d: %s", code, errOut)
		}
		for _, r := range readCaptionRecords(t, out) {
			if p, _ := r["params"].(map[string]any); r["error"] == nil && p["num_beams"] != 2.0 {
				t.Errorf("after --force: %v", r)
			}
		}
		// a missing model is "not found", and leaves no output behind
		out3 := filepath.Join(t.TempDir(), "none.jsonl")
		code, _, errOut = runCLI(t, "caption", "--model", filepath.Join(t.TempDir(), "nope"), "--images", imgDir, "--out", out3)
		if code != exitRuntime || !strings.Contains(errOut, "model") || !strings.Contains(errOut, "not found") {
			t.Errorf("missing model: exit %d, %q", code, errOut)
		}
		if _, err := os.Stat(out3); err == nil {
			t.Error("a failed start left an output file")
		}
	}
}
