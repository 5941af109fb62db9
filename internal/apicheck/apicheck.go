package apicheck

import (
	"fmt"
	"go/types"
	"sort"
	"strings"
)

// Module is the module path whose internal/ packages must not show.
const Module = "github.com/taskhost/taskhost"

// Internal reports whether path is an internal/ package of the module.
func Internal(path string) bool {
	return path == Module+"/internal" || strings.HasPrefix(path, Module+"/internal/")
}

// Leaks returns, sorted, each exported identifier of pkg (constants,
// variables, functions, types, their exported fields and methods, and the
// methods of exported interfaces) whose declaration mentions an internal/
// package, as "pkg.Name: internal/path".
func Leaks(pkg *types.Package) []string {
	var out []string
	report := func(name string, t types.Type) {
		for _, p := range mentions(t) {
			out = append(out, fmt.Sprintf("%s.%s: %s", pkg.Name(), name, strings.TrimPrefix(p, Module+"/")))
		}
	}
	scope := pkg.Scope()
	for _, name := range scope.Names() {
		obj := scope.Lookup(name)
		if !obj.Exported() {
			continue
		}
		tn, isType := obj.(*types.TypeName)
		if !isType {
			report(name, obj.Type())
			continue
		}
		if tn.IsAlias() {
			report(name, types.Unalias(tn.Type()))
			continue
		}
		report(name, tn.Type().Underlying())
		for _, m := range Methods(tn) {
			report(name+"."+m.Name(), m.Type())
		}
	}
	sort.Strings(out)
	return out
}

// Methods returns the exported methods declared on the named type of tn
// (value and pointer receivers), or of its interface.
func Methods(tn *types.TypeName) []*types.Func {
	var out []*types.Func
	if _, iface := tn.Type().Underlying().(*types.Interface); iface {
		ms := types.NewMethodSet(tn.Type())
		for i := range ms.Len() {
			if f := ms.At(i).Obj().(*types.Func); f.Exported() {
				out = append(out, f)
			}
		}
		return out
	}
	named, ok := tn.Type().(*types.Named)
	if !ok {
		return nil
	}
	for i := range named.NumMethods() {
		if m := named.Method(i); m.Exported() {
			out = append(out, m)
		}
	}
	return out
}

// mentions returns the internal/ packages that t names, once each.
func mentions(t types.Type) []string {
	found := map[string]bool{}
	seen := map[types.Type]bool{}
	var walk func(types.Type)
	walk = func(t types.Type) {
		if t == nil || seen[t] {
			return
		}
		seen[t] = true
		switch t := t.(type) {
		case *types.Alias:
			walk(types.Unalias(t))
		case *types.Named:
			if p := t.Obj().Pkg(); p != nil && Internal(p.Path()) {
				found[p.Path()] = true
			}
			for i := range t.TypeArgs().Len() {
				walk(t.TypeArgs().At(i))
			}
			// A named type's own fields and methods are checked where it
			// is declared; an internal one is reported above.
		case *types.Pointer:
			walk(t.Elem())
		case *types.Slice:
			walk(t.Elem())
		case *types.Array:
			walk(t.Elem())
		case *types.Map:
			walk(t.Key())
			walk(t.Elem())
		case *types.Chan:
			walk(t.Elem())
		case *types.Signature:
			for i := range t.TypeParams().Len() {
				walk(t.TypeParams().At(i).Constraint())
			}
			walk(t.Params())
			walk(t.Results())
		case *types.Tuple:
			for i := range t.Len() {
				walk(t.At(i).Type())
			}
		case *types.Struct:
			for i := range t.NumFields() {
				if f := t.Field(i); f.Exported() || f.Embedded() {
					walk(f.Type())
				}
			}
		case *types.Interface:
			for i := range t.NumEmbeddeds() {
				walk(t.EmbeddedType(i))
			}
			for i := range t.NumExplicitMethods() {
				if m := t.ExplicitMethod(i); m.Exported() {
					walk(m.Type())
				}
			}
		case *types.Union:
			for i := range t.Len() {
				walk(t.Term(i).Type())
			}
		case *types.TypeParam:
			walk(t.Constraint())
		}
	}
	walk(t)
	out := make([]string, 0, len(found))
	for p := range found {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}
