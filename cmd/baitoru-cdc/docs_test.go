package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/baitoru/baitoru-cdc/config"
	"github.com/baitoru/baitoru-cdc/internal/testenv"
)

// docCommand is one shell command shown in the documentation, as a user
// would paste it (continuation lines joined).
type docCommand struct {
	File string // relative to the module root
	Line int    // 1-based line of its first line
	Text string
	// Output is what the docs show the command printing: in a console
	// block the lines after it; else the fenced block right after the
	// command's block (only blank lines between) when it is json.
	Output string
	// NotRun is why no test runs it: the reason of a marker
	// "<!-- not run by the docs tests: REASON -->" on the line before its
	// fenced block, or of a "# NOT EXERCISED BY CI: REASON" comment in a
	// YAML file.
	NotRun string
}

// notRunMarker marks a fenced block whose commands no docs test runs.
var notRunMarker = regexp.MustCompile(`^<!-- not run by the docs tests: (.+) -->$`)

// notRunComment marks a YAML file whose commented commands CI cannot run.
var notRunComment = regexp.MustCompile(`^#\s*NOT EXERCISED BY CI:\s*(.+)$`)

func (c docCommand) String() string { return c.File + ":" + strconv.Itoa(c.Line) + ": " + c.Text }

// docFiles are the files whose shell commands users paste: README.md,
// docker-compose.yml's comments, docs/*.md and the READMEs of tools/.
func docFiles(t *testing.T) []string {
	t.Helper()
	root := testenv.ModuleRoot()
	files := []string{"README.md", "docker-compose.yml"}
	mds, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil || len(mds) == 0 {
		t.Fatalf("no docs/*.md under %s (%v)", root, err)
	}
	readmes, _ := filepath.Glob(filepath.Join(root, "tools", "*", "README.md"))
	mds = append(append(mds, filepath.Join(root, "tools", "README.md")), readmes...)
	for _, m := range mds {
		rel, _ := filepath.Rel(root, m)
		files = append(files, rel)
	}
	return files
}

// shellFences are the info strings of the fenced blocks holding commands.
var shellFences = map[string]bool{"sh": true, "bash": true, "shell": true, "console": true}

// docCommands returns every shell command of the documentation files: the
// fenced sh/bash/shell/console blocks of Markdown files (in a console block
// only the lines after a "$ " prompt), and the indented commands of a
// YAML file's comments ("#     make image && ..."). Comment-only lines are
// left out; a line ending in "\" continues on the next.
func docCommands(t *testing.T, files ...string) []docCommand {
	t.Helper()
	root := testenv.ModuleRoot()
	var out []docCommand
	for _, rel := range files {
		f, err := os.Open(filepath.Join(root, rel))
		if err != nil {
			t.Fatal(err)
		}
		var lines []string
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			lines = append(lines, sc.Text())
		}
		f.Close()
		if strings.HasSuffix(rel, ".md") {
			out = append(out, markdownCommands(rel, lines)...)
		} else {
			out = append(out, commentCommands(rel, lines)...)
		}
	}
	return out
}

func markdownCommands(file string, lines []string) []docCommand {
	var out []docCommand
	for i := 0; i < len(lines); i++ {
		info, ok := strings.CutPrefix(strings.TrimSpace(lines[i]), "```")
		if !ok {
			continue
		}
		end := i + 1
		for end < len(lines) && strings.TrimSpace(lines[end]) != "```" {
			end++
		}
		if !shellFences[strings.TrimSpace(info)] {
			i = end
			continue
		}
		console := strings.TrimSpace(info) == "console"
		cmds := joinCommands(file, i+2, lines[i+1:min(end, len(lines))], console)
		if i > 0 {
			if m := notRunMarker.FindStringSubmatch(strings.TrimSpace(lines[i-1])); m != nil {
				for k := range cmds {
					cmds[k].NotRun = m[1]
				}
			}
		}
		// The documented answer: a json block right after this one.
		j := end + 1
		for j < len(lines) && strings.TrimSpace(lines[j]) == "" {
			j++
		}
		if j < len(lines) && strings.TrimSpace(lines[j]) == "```json" && len(cmds) > 0 {
			k := j + 1
			for k < len(lines) && strings.TrimSpace(lines[k]) != "```" {
				k++
			}
			cmds[len(cmds)-1].Output = strings.Join(lines[j+1:min(k, len(lines))], "\n")
		}
		out = append(out, cmds...)
		i = end
	}
	return out
}

// commentCommandRe matches a command shown in a comment, indented by at
// least four spaces after the "#".
var commentCommandRe = regexp.MustCompile(`^#\s{4,}(\S.*)$`)

func commentCommands(file string, lines []string) []docCommand {
	var out []docCommand
	notRun := ""
	for _, l := range lines {
		if m := notRunComment.FindStringSubmatch(l); m != nil {
			notRun = m[1]
		}
	}
	for i := 0; i < len(lines); i++ {
		m := commentCommandRe.FindStringSubmatch(lines[i])
		if m == nil {
			continue
		}
		start := i
		block := []string{m[1]}
		for strings.HasSuffix(strings.TrimSpace(block[len(block)-1]), `\`) && i+1 < len(lines) {
			n := commentCommandRe.FindStringSubmatch(lines[i+1])
			if n == nil {
				break
			}
			block = append(block, n[1])
			i++
		}
		out = append(out, joinCommands(file, start+1, block, false)...)
	}
	for k := range out {
		out[k].NotRun = notRun
	}
	return out
}

// joinCommands splits a block into commands; first is the line number of
// block[0].
func joinCommands(file string, first int, block []string, console bool) []docCommand {
	var out []docCommand
	var cur []string
	curLine := 0
	for k, l := range block {
		line := strings.TrimRight(l, " \t")
		if len(cur) == 0 {
			if console {
				rest, ok := strings.CutPrefix(strings.TrimSpace(line), "$ ")
				if !ok { // the output of the command before
					if n := len(out); n > 0 {
						out[n-1].Output += l + "\n"
					}
					continue
				}
				line = rest
			}
			trimmed := strings.TrimSpace(line)
			if trimmed == "" || strings.HasPrefix(trimmed, "#") {
				continue
			}
			curLine = first + k
		}
		if cont, ok := strings.CutSuffix(line, `\`); ok {
			cur = append(cur, strings.TrimSpace(cont))
			continue
		}
		cur = append(cur, strings.TrimSpace(line))
		out = append(out, docCommand{File: file, Line: curLine, Text: strings.Join(cur, " ")})
		cur = nil
	}
	if len(cur) > 0 {
		out = append(out, docCommand{File: file, Line: curLine, Text: strings.Join(cur, " ")})
	}
	return out
}

// TestDocCommandsExtracted guards the extraction itself: the commands the
// docs tests run are found, with their documented answers.
func TestDocCommandsExtracted(t *testing.T) {
	cmds := docCommands(t, docFiles(t)...)
	var links, withAnswer, compose int
	for _, c := range cmds {
		if strings.Contains(c.Text, "/v1/links") && strings.HasPrefix(c.Text, "curl ") {
			links++
			if c.Output != "" {
				withAnswer++
			}
			if c.File == "docker-compose.yml" {
				compose++
			}
		}
		if strings.HasSuffix(c.Text, `\`) {
			t.Errorf("%s: continuation not joined", c)
		}
	}
	if links < 6 || withAnswer < 2 || compose != 1 {
		t.Fatalf("found %d links API commands (%d with a documented answer, %d in docker-compose.yml); the docs show at least 6 (2 with answers, 1 in docker-compose.yml):\n%v",
			links, withAnswer, compose, cmds)
	}
}

// TestDocumentedValidateOutput pastes each documented `baitoru-cdc
// validate` whose documented output ends in a summary (valid, or invalid
// with exit code 1) into bash, in the repository (where the shipped
// config.yaml is), with a clean environment, and compares what it prints
// with the docs.
func TestDocumentedValidateOutput(t *testing.T) {
	bin := buildBinary(t)
	clearOverrides(t)
	n := 0
	for _, c := range docCommands(t, docFiles(t)...) {
		if !documentedValidate(c) {
			continue
		}
		n++
		cmd := exec.Command("bash", "-c", c.Text)
		cmd.Dir = testenv.ModuleRoot()
		cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(bin)+string(os.PathListSeparator)+os.Getenv("PATH"))
		out, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if want := map[bool]int{true: 1, false: 0}[strings.Contains(c.Output, ": invalid: ")]; code != want {
			t.Errorf("%s\n  exit %d, want %d: %s", c, code, want, out)
			continue
		}
		if string(out) != c.Output {
			t.Errorf("%s\n  prints:\n%s  the docs show:\n%s", c, out, c.Output)
		}
	}
	if n == 0 {
		t.Fatal("no documented validate command with a valid summary found")
	}
}

// documentedValidate: c is a validate whose documented output ends in its
// summary line.
func documentedValidate(c docCommand) bool {
	return strings.Contains(c.Text, "baitoru-cdc validate") && (strings.Contains(c.Output, ": valid:") || strings.Contains(c.Output, ": invalid: "))
}

// TestDocEventExamplesAgree: the example event of the README and the
// example push of docs/kobot.md describe the same event (same envelope),
// and its subject is what the shipped config.yaml makes of it (the key
// columns' values joined with "/").
func TestDocEventExamplesAgree(t *testing.T) {
	root := testenv.ModuleRoot()
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	guide, err := os.ReadFile(filepath.Join(root, "docs", "kobot.md"))
	if err != nil {
		t.Fatal(err)
	}
	fenced := func(doc, info, contains string) string {
		for _, block := range strings.Split(doc, "```"+info+"\n")[1:] {
			block, _, _ = strings.Cut(block, "\n```")
			if strings.Contains(block, contains) {
				return block
			}
		}
		t.Fatalf("no ```%s block with %q", info, contains)
		return ""
	}
	var ev, push map[string]any
	if err := json.Unmarshal([]byte(fenced(string(readme), "json", `"specversion"`)), &ev); err != nil {
		t.Fatalf("README's example event: %v", err)
	}
	_, body, _ := strings.Cut(fenced(string(guide), "http", "webhook-id"), "\n\n")
	if err := json.Unmarshal([]byte(body), &push); err != nil {
		t.Fatalf("docs/kobot.md's example push: %v", err)
	}
	for _, k := range []string{"specversion", "id", "source", "type", "mappingversion", "subject", "table", "op", "lsn", "xid", "datacontenttype"} {
		if fmt.Sprint(ev[k]) != fmt.Sprint(push[k]) {
			t.Errorf("%s: README's example event has %v, docs/kobot.md's push %v", k, ev[k], push[k])
		}
	}
	clearOverrides(t)
	t.Setenv("BAITORU_CDC_DEMO", "true")
	cfg, err := config.LoadConnector(filepath.Join(root, "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tb := range cfg.Tables {
		if tb.Table != ev["table"] {
			continue
		}
		for name, e := range map[string]map[string]any{"README.md": ev, "docs/kobot.md": push} {
			data, _ := e["data"].(map[string]any)
			var parts []string
			for _, k := range tb.Key {
				parts = append(parts, fmt.Sprint(data[k]))
			}
			if want := strings.Join(parts, "/"); e["subject"] != want {
				t.Errorf("%s: subject %v, but the shipped config.yaml's key %v of %s gives %q", name, e["subject"], tb.Key, tb.Table, want)
			}
		}
	}
}

// TestDocsSpeakOfTheProduct: the user-facing files speak of the product,
// not of how it was built (issue numbers, who worked on it).
func TestDocsSpeakOfTheProduct(t *testing.T) {
	root := testenv.ModuleRoot()
	files := append(docFiles(t), "Makefile", "config.yaml", "Dockerfile")
	re := regexp.MustCompile(`(?i)\bissue\s*#?\s*\d+|\bthe issue\b|\bissue's\b|\bowner:\s|\b\w+ helper\b`)
	for _, f := range files {
		data, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(string(data), "\n") {
			if m := re.FindString(line); m != "" {
				t.Errorf("%s:%d: %q: say what the product does, not how it was built", f, i+1, m)
			}
		}
	}
}

// shellWords splits a command line the way the shell would for the simple
// commands the docs show: words separated by blanks, '...' and "..."
// quoting, a backslash escaping the next character. It stops at a command
// separator (&&, ||, ;, |) or a comment.
func shellWords(line string) []string {
	var words []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case c == '\'':
			j := strings.IndexByte(line[i+1:], '\'')
			if j < 0 {
				j = len(line) - i - 1
			}
			cur.WriteString(line[i+1 : i+1+j])
			i += j + 1
			inWord = true
		case c == '"':
			j := strings.IndexByte(line[i+1:], '"')
			if j < 0 {
				j = len(line) - i - 1
			}
			cur.WriteString(line[i+1 : i+1+j])
			i += j + 1
			inWord = true
		case c == '\\' && i+1 < len(line):
			cur.WriteByte(line[i+1])
			i++
			inWord = true
		case c == ' ' || c == '\t':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case (c == '#' && !inWord) || c == ';' || c == '|' || c == '&':
			if inWord {
				words = append(words, cur.String())
			}
			return words
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words
}

// TestDocumentedCommandsParse: every `baitoru-cdc ...` invocation the docs
// and the commands' own help examples show names a real command and real
// flags (so a renamed flag cannot leave the docs behind).
func TestDocumentedCommandsParse(t *testing.T) {
	cmds := docCommands(t, docFiles(t)...)
	root := newRootCmd()
	root.InitDefaultCompletionCmd()
	for _, c := range root.Commands() {
		for i, line := range strings.Split(c.Example, "\n") {
			if l := strings.TrimSpace(line); l != "" && !strings.HasPrefix(l, "#") {
				cmds = append(cmds, docCommand{File: "baitoru-cdc " + c.Name() + " --help (Examples)", Line: i + 1, Text: l})
			}
		}
	}
	n := 0
	for _, dc := range cmds {
		// Every command of the line: a && b, a | b.
		for _, part := range regexp.MustCompile(`&&|\|\||;|\|`).Split(dc.Text, -1) {
			words := shellWords(part)
			for len(words) > 0 && (strings.Contains(words[0], "=") || words[0] == "exec" || words[0] == "sudo" || words[0] == "time") {
				words = words[1:] // VAR=value, exec, sudo
			}
			at := -1
			if len(words) > 0 && (words[0] == "baitoru-cdc" || strings.HasSuffix(words[0], "/baitoru-cdc")) {
				at = 0
			}
			if at < 0 {
				// docker run … IMAGE sink --config …: the image's entrypoint is baitoru-cdc.
				if len(words) < 2 || words[0] != "docker" && words[0] != "podman" || words[1] != "run" {
					continue
				}
				at = slices.IndexFunc(words, func(w string) bool { return strings.Contains(w, "/baitoru-cdc:") && !strings.Contains(w, "=") })
				if at < 0 {
					continue
				}
			}
			args := words[at+1:]
			if len(args) == 0 {
				continue
			}
			n++
			fresh := newRootCmd()
			fresh.InitDefaultCompletionCmd()
			fresh.InitDefaultVersionFlag()
			fresh.InitDefaultHelpFlag()
			sub, rest, err := fresh.Find(args)
			if err != nil || sub == fresh && !strings.HasPrefix(args[0], "-") {
				t.Errorf("%s\n  no such command: %v", dc, err)
				continue
			}
			if err := sub.ParseFlags(rest); err != nil {
				t.Errorf("%s\n  %s: %v", dc, sub.CommandPath(), err)
			}
		}
	}
	if n < 15 {
		t.Fatalf("only %d documented invocations found; the extraction is broken", n)
	}
}

// TestShellCompletion runs the documented completion commands' generators
// and asks the binary to complete a command name, as the shells do.
func TestShellCompletion(t *testing.T) {
	bin := buildBinary(t)
	for _, shell := range []string{"bash", "zsh", "fish", "powershell"} {
		out, err := exec.Command(bin, "completion", shell).Output()
		if err != nil || !strings.Contains(string(out), "baitoru-cdc") || len(out) < 500 {
			t.Errorf("completion %s: %v (%d bytes)", shell, err, len(out))
		}
	}
	out, err := exec.Command(bin, "__complete", "ch").Output()
	if err != nil || !strings.Contains(string(out), "check\t") {
		t.Errorf("completing \"ch\": %v %q, want check", err, out)
	}
	out, err = exec.Command(bin, "__complete", "check", "--js").Output()
	if err != nil || !strings.Contains(string(out), "--json") {
		t.Errorf("completing \"check --js\": %v %q, want --json", err, out)
	}
}

// TestCheckRowsDocumented: the rows `check` can print and the rows of the
// table in docs/dba.md are the same (a row named after a thing, e.g.
// "table public.apps", is documented as "table <schema.table>").
func TestCheckRowsDocumented(t *testing.T) {
	root := testenv.ModuleRoot()
	code := map[string]bool{} // exact names; prefixes end in " "
	exact := regexp.MustCompile(`(?:add\(|Check: |(?:name|id) :?= )"([^"]+)"\s*[,}\n]`)
	prefix := regexp.MustCompile(`(?:add\(|(?:name|id) :?= )"([^"]+ )"\s*\+`)
	for _, f := range []string{"connector/postgres/dba/check.go", "connector/postgres/dba/failover.go", "connector/postgres/dba/records.go", "connector/postgres/dba/largerows.go", "connector/postgres/dba/backfill.go", "cmd/baitoru-cdc/check.go"} {
		src, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range exact.FindAllStringSubmatch(string(src), -1) {
			code[m[1]] = true
		}
		for _, m := range prefix.FindAllStringSubmatch(string(src), -1) {
			code[m[1]] = true
		}
	}
	if len(code) < 20 {
		t.Fatalf("found %d check rows in the code: %v; the extraction is broken", len(code), code)
	}
	doc, err := os.ReadFile(filepath.Join(root, "docs", "dba.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, _ := strings.Cut(string(doc), "## The preflight: check")
	section, _, _ = strings.Cut(section, "\n## ")
	documented := map[string]bool{}
	for _, m := range regexp.MustCompile("(?m)^\\| `([^`]+)` \\|").FindAllStringSubmatch(section, -1) {
		name := m[1]
		if i := strings.Index(name, "<"); i > 0 {
			name = name[:i]
		}
		documented[name] = true
	}
	for name := range code {
		if !documented[name] {
			t.Errorf("check prints a row %q that the table of docs/dba.md (The preflight: check) does not list", name)
		}
	}
	for name := range documented {
		if !code[name] {
			t.Errorf("docs/dba.md lists a check row %q that check never prints", name)
		}
	}
}

// TestEveryCommandHasHelp: every command explains itself (Long) and shows
// how it is used (Example); TestDocumentedCommandsParse checks that the
// examples parse.
func TestEveryCommandHasHelp(t *testing.T) {
	for _, c := range newRootCmd().Commands() {
		if strings.Count(c.Long, "\n") < 2 || strings.TrimSpace(c.Example) == "" {
			t.Errorf("baitoru-cdc %s --help: want a description of several lines and examples (Long: %d lines, Example: %q)", c.Name(), strings.Count(c.Long, "\n")+1, c.Example)
		}
	}
}

// TestFuzzShortCoversEveryTarget: make fuzz-short (part of make test)
// fuzzes every Fuzz function of the repository.
func TestFuzzShortCoversEveryTarget(t *testing.T) {
	root := testenv.ModuleRoot()
	mk, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?s)\nFUZZ_TARGETS :=(.*?[^\\])\n`).FindSubmatch(mk)
	if m == nil {
		t.Fatal("no FUZZ_TARGETS in the Makefile")
	}
	listed := map[string]bool{}
	for _, f := range strings.Fields(strings.ReplaceAll(string(m[1]), "\\", " ")) {
		listed[f] = true
	}
	n := 0
	err = filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "node_modules" || strings.HasPrefix(d.Name(), ".")) {
			return filepath.SkipDir
		}
		if !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, f := range regexp.MustCompile(`(?m)^func (Fuzz\w+)\(f \*testing\.F\)`).FindAllSubmatch(src, -1) {
			n++
			rel, _ := filepath.Rel(root, filepath.Dir(path))
			if target := "./" + rel + ":" + string(f[1]); !listed[target] {
				t.Errorf("the Makefile's FUZZ_TARGETS does not list %s", target)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 5 {
		t.Fatalf("found %d fuzz targets; the walk is broken", n)
	}
}
