package deploy_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"go/ast"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/baitoru/baitoru-cdc"

// sdkPrefix is the import path prefix of the AWS SDK's service clients.
const sdkPrefix = "github.com/aws/aws-sdk-go-v2/service/"

// batchAction maps the SDK's batch operations to the IAM action that
// authorizes them: SQS and SNS have no IAM actions of their own for them.
var batchAction = map[string]string{
	"sqs:SendMessageBatch":             "sqs:SendMessage",
	"sqs:DeleteMessageBatch":           "sqs:DeleteMessage",
	"sqs:ChangeMessageVisibilityBatch": "sqs:ChangeMessageVisibility",
	"sns:PublishBatch":                 "sns:Publish",
}

// program is the product's code, type-checked from source: every package of
// this module that the given commands import.
type program struct {
	fset  *token.FileSet
	pkgs  map[string]*types.Package
	info  map[string]*types.Info
	files map[string][]*ast.File
	decls map[*types.Func]*ast.FuncDecl
	// inits are the package-level variable initializers and init functions.
	inits map[string][]ast.Node
}

type listedPackage struct {
	ImportPath string
	Dir        string
	GoFiles    []string
	Export     string
	Standard   bool
	Module     *struct{ Path string }
}

// loadProgram type-checks this module's packages among the dependencies of
// cmds from source; every other package comes from the compiler's export
// data (go list -export), so nothing outside the standard library and
// go/types is needed.
func loadProgram(t *testing.T, cmds ...string) *program {
	t.Helper()
	args := append([]string{"list", "-deps", "-export", "-json=ImportPath,Dir,GoFiles,Export,Standard,Module"}, cmds...)
	cmd := exec.Command("go", args...)
	cmd.Dir = ".."
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	var listed []listedPackage
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p listedPackage
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		listed = append(listed, p)
	}
	exports := map[string]string{}
	for _, p := range listed {
		exports[p.ImportPath] = p.Export
	}
	prog := &program{
		fset: token.NewFileSet(), pkgs: map[string]*types.Package{}, info: map[string]*types.Info{},
		files: map[string][]*ast.File{}, decls: map[*types.Func]*ast.FuncDecl{}, inits: map[string][]ast.Node{},
	}
	gc := importer.ForCompiler(prog.fset, "gc", func(path string) (io.ReadCloser, error) {
		f, ok := exports[path]
		if !ok || f == "" {
			return nil, errors.New("no export data for " + path)
		}
		return os.Open(f)
	})
	imp := importerFunc(func(path string) (*types.Package, error) {
		if p, ok := prog.pkgs[path]; ok {
			return p, nil
		}
		return gc.Import(path)
	})
	// go list -deps prints a package after its dependencies.
	for _, p := range listed {
		if p.Module == nil || p.Module.Path != module {
			continue
		}
		var files []*ast.File
		for _, name := range p.GoFiles {
			f, err := parser.ParseFile(prog.fset, filepath.Join(p.Dir, name), nil, parser.SkipObjectResolution)
			if err != nil {
				t.Fatal(err)
			}
			files = append(files, f)
		}
		info := &types.Info{
			Types: map[ast.Expr]types.TypeAndValue{}, Uses: map[*ast.Ident]types.Object{},
			Defs: map[*ast.Ident]types.Object{}, Selections: map[*ast.SelectorExpr]*types.Selection{},
		}
		conf := types.Config{Importer: imp}
		pkg, err := conf.Check(p.ImportPath, prog.fset, files, info)
		if err != nil {
			t.Fatalf("type-check %s: %v", p.ImportPath, err)
		}
		prog.pkgs[p.ImportPath], prog.info[p.ImportPath], prog.files[p.ImportPath] = pkg, info, files
		for _, f := range files {
			for _, d := range f.Decls {
				switch d := d.(type) {
				case *ast.FuncDecl:
					fn := info.Defs[d.Name].(*types.Func)
					prog.decls[fn] = d
					if d.Recv == nil && d.Name.Name == "init" {
						prog.inits[p.ImportPath] = append(prog.inits[p.ImportPath], d)
					}
				case *ast.GenDecl:
					if d.Tok == token.VAR {
						prog.inits[p.ImportPath] = append(prog.inits[p.ImportPath], d)
					}
				}
			}
		}
	}
	return prog
}

type importerFunc func(path string) (*types.Package, error)

func (f importerFunc) Import(path string) (*types.Package, error) { return f(path) }

// awsActions returns the IAM actions of the AWS API calls reachable from
// the roots (functions named "importpath.Name"), with the packages'
// initializers. Reachable: called or referred to (a method value handed
// to a library), and every method of every type of this module that a
// reachable expression has (what an interface call, ours or a library's,
// may dispatch to). An API call is a call of a function or method named
// Op with a *<service>.OpInput argument, where <service> is a package of
// the AWS SDK: through the client or through any interface over it.
func (p *program) awsActions(t *testing.T, roots ...string) []string {
	t.Helper()
	seenFn := map[*types.Func]bool{}
	seenType := map[*types.TypeName]bool{}
	var work []ast.Node
	actions := map[string]bool{}
	var reachFn func(fn *types.Func)
	reachType := func(typ types.Type) {
		if ptr, ok := typ.(*types.Pointer); ok {
			typ = ptr.Elem()
		}
		named, ok := typ.(*types.Named)
		if !ok || named.Obj().Pkg() == nil || p.pkgs[named.Obj().Pkg().Path()] == nil || seenType[named.Obj()] {
			return
		}
		seenType[named.Obj()] = true
		ms := types.NewMethodSet(types.NewPointer(named))
		for i := range ms.Len() {
			reachFn(ms.At(i).Obj().(*types.Func))
		}
	}
	reachFn = func(fn *types.Func) {
		fn = fn.Origin()
		if seenFn[fn] {
			return
		}
		seenFn[fn] = true
		if d, ok := p.decls[fn]; ok && d.Body != nil {
			work = append(work, d)
		}
	}
	for _, r := range roots {
		i := strings.LastIndex(r, ".")
		pkg := p.pkgs[r[:i]]
		if pkg == nil {
			t.Fatalf("root %s: package not loaded", r)
		}
		fn, ok := pkg.Scope().Lookup(r[i+1:]).(*types.Func)
		if !ok {
			t.Fatalf("root %s: no such function", r)
		}
		reachFn(fn)
		// The initializers of the packages the root's package imports.
		var visit func(pkg *types.Package)
		seenPkg := map[string]bool{}
		visit = func(pkg *types.Package) {
			if p.pkgs[pkg.Path()] == nil || seenPkg[pkg.Path()] {
				return
			}
			seenPkg[pkg.Path()] = true
			work = append(work, p.inits[pkg.Path()]...)
			for _, imp := range pkg.Imports() {
				visit(imp)
			}
		}
		visit(pkg)
	}
	infoOf := func(n ast.Node) *types.Info {
		for path, files := range p.files {
			for _, f := range files {
				if f.Pos() <= n.Pos() && n.End() <= f.End() {
					return p.info[path]
				}
			}
		}
		return nil
	}
	for len(work) > 0 {
		n := work[len(work)-1]
		work = work[:len(work)-1]
		info := infoOf(n)
		ast.Inspect(n, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.Ident:
				if fn, ok := info.Uses[n].(*types.Func); ok {
					reachFn(fn)
				}
			case *ast.CallExpr:
				if name, ok := apiCall(info, n); ok {
					actions[name] = true
				}
			}
			if e, ok := n.(ast.Expr); ok {
				if tv, ok := info.Types[e]; ok && tv.Type != nil {
					reachType(tv.Type)
				}
			}
			return true
		})
	}
	var out []string
	for a := range actions {
		if b, ok := batchAction[a]; ok {
			a = b
		}
		if !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	slices.Sort(out)
	return out
}

// apiCall reports the "service:Operation" of a call of an AWS SDK operation.
func apiCall(info *types.Info, call *ast.CallExpr) (string, bool) {
	var name string
	switch f := call.Fun.(type) {
	case *ast.SelectorExpr:
		name = f.Sel.Name
	case *ast.Ident:
		name = f.Name
	default:
		return "", false
	}
	for _, arg := range call.Args {
		ptr, ok := info.TypeOf(arg).(*types.Pointer)
		if !ok {
			continue
		}
		named, ok := ptr.Elem().(*types.Named)
		if !ok || named.Obj().Pkg() == nil {
			continue
		}
		path := named.Obj().Pkg().Path()
		if strings.HasPrefix(path, sdkPrefix) && !strings.Contains(strings.TrimPrefix(path, sdkPrefix), "/") &&
			named.Obj().Name() == name+"Input" {
			return strings.TrimPrefix(path, sdkPrefix) + ":" + name, true
		}
	}
	return "", false
}
