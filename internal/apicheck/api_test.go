package apicheck_test

import (
	"fmt"
	"go/token"
	"go/types"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/tools/go/packages"

	"github.com/taskhost/taskhost/internal/apicheck"
)

// publicPackages loads the type information of every package of the module
// that another module can import: not internal/, not a command. It lists
// the module's packages first (no build), then loads the types of the
// public ones only, so that no other package is compiled for it.
func publicPackages(t *testing.T) []*packages.Package {
	t.Helper()
	loadOnce.Do(func() { loaded, loadErr = loadPublic() })
	require.NoError(t, loadErr)
	require.NotEmpty(t, loaded)
	return loaded
}

var (
	loadOnce sync.Once
	loaded   []*packages.Package
	loadErr  error
)

func loadPublic() ([]*packages.Package, error) {
	if _, err := exec.LookPath("go"); err != nil {
		return nil, fmt.Errorf("the go command is needed to load the packages: %w", err)
	}
	const dir = "../.."
	listed, err := packages.Load(&packages.Config{Mode: packages.NeedName, Dir: dir}, apicheck.Module+"/...")
	if err != nil {
		return nil, err
	}
	var public []string
	for _, p := range listed {
		if len(p.Errors) > 0 {
			return nil, fmt.Errorf("%s: %v", p.PkgPath, p.Errors)
		}
		if apicheck.Internal(p.PkgPath) || p.Name == "main" || strings.Contains(p.PkgPath, "/examples") {
			continue
		}
		public = append(public, p.PkgPath)
	}
	out, err := packages.Load(&packages.Config{Mode: packages.NeedName | packages.NeedTypes, Dir: dir}, public...)
	if err != nil {
		return nil, err
	}
	for _, p := range out {
		if len(p.Errors) > 0 {
			return nil, fmt.Errorf("%s: %v", p.PkgPath, p.Errors)
		}
	}
	return out, nil
}

// TestNoInternalInPublicAPI fails if an exported identifier of a public
// package mentions an internal/ package in its declaration: a function's
// parameters or results, a variable's or constant's type, an alias, a
// struct's exported fields, a method, an interface's methods.
func TestNoInternalInPublicAPI(t *testing.T) {
	t.Parallel()
	var leaks []string
	for _, p := range publicPackages(t) {
		leaks = append(leaks, apicheck.Leaks(p.Types)...)
	}
	require.Empty(t, leaks, "exported identifiers that mention internal/ packages")
}

// TestLeaksFindsAnInternalMention checks the checker: a public package
// whose exported names reach an internal type in each way it looks at.
func TestLeaksFindsAnInternalMention(t *testing.T) {
	t.Parallel()
	in := types.NewPackage(apicheck.Module+"/internal/secret", "secret")
	hidden := types.NewNamed(types.NewTypeName(token.NoPos, in, "Hidden", nil), types.Typ[types.Int], nil)

	pub := types.NewPackage(apicheck.Module+"/pub", "pub")
	declare := func(o types.Object) { pub.Scope().Insert(o) }
	param := func(t types.Type) *types.Tuple { return types.NewTuple(types.NewVar(token.NoPos, pub, "x", t)) }

	declare(types.NewFunc(token.NoPos, pub, "Get", types.NewSignatureType(nil, nil, nil, nil, param(hidden), false)))
	declare(types.NewVar(token.NoPos, pub, "Default", types.NewPointer(hidden)))
	declare(types.NewTypeName(token.NoPos, pub, "Alias", hidden)) // type Alias = secret.Hidden
	st := types.NewStruct([]*types.Var{
		types.NewField(token.NoPos, pub, "Open", types.NewMap(types.Typ[types.String], hidden), false),
		types.NewField(token.NoPos, pub, "closed", hidden, false),
	}, nil)
	declare(types.NewTypeName(token.NoPos, pub, "Box", nil))
	types.NewNamed(pub.Scope().Lookup("Box").(*types.TypeName), st, nil)
	runtime := types.NewNamed(types.NewTypeName(token.NoPos, pub, "Runtime", nil), types.NewStruct(nil, nil), nil)
	pub.Scope().Insert(runtime.Obj())
	recv := types.NewVar(token.NoPos, pub, "r", types.NewPointer(runtime))
	runtime.AddMethod(types.NewFunc(token.NoPos, pub, "Monitor",
		types.NewSignatureType(recv, nil, nil, nil, param(hidden), false)))
	runtime.AddMethod(types.NewFunc(token.NoPos, pub, "fine",
		types.NewSignatureType(recv, nil, nil, nil, param(hidden), false)))
	declare(types.NewFunc(token.NoPos, pub, "unexported", types.NewSignatureType(nil, nil, nil, nil, param(hidden), false)))

	require.Equal(t, []string{
		"pub.Alias: internal/secret",
		"pub.Box: internal/secret",
		"pub.Default: internal/secret",
		"pub.Get: internal/secret",
		"pub.Runtime.Monitor: internal/secret",
	}, apicheck.Leaks(pub))
}

// TestCountAPI logs how many exported identifiers each public package
// declares (top-level names, and the exported methods of its types), for
// the changelog and release notes: go test -run CountAPI -v ./internal/apicheck
func TestCountAPI(t *testing.T) {
	t.Parallel()
	for _, p := range publicPackages(t) {
		scope := p.Types.Scope()
		top, methods := 0, 0
		for _, name := range scope.Names() {
			obj := scope.Lookup(name)
			if !obj.Exported() {
				continue
			}
			top++
			if tn, ok := obj.(*types.TypeName); ok && !tn.IsAlias() {
				methods += len(apicheck.Methods(tn))
			}
		}
		t.Logf("%-50s %3d names, %3d methods", p.PkgPath, top, methods)
	}
}
