package apitype

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// apitype stays a leaf: servers and clients both import it, so it imports
// nothing of weft but the resources the admin API carries (which import
// nothing of weft either).
func TestImportsNoServer(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		ast, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range ast.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if strings.HasPrefix(p, "weft.dev/") && p != "weft.dev/weft/internal/resource" {
				t.Errorf("%s imports %s: apitype may import only internal/resource of weft", f, p)
			}
		}
	}
}
