package apitype

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
)

// Every code answers with a status of its own class; an unknown code is a
// 500, which a server's test then catches.
func TestCodes(t *testing.T) {
	for code, status := range Codes() {
		if status < 400 || status > 599 || http.StatusText(status) == "" {
			t.Errorf("%s: status %d", code, status)
		}
	}
	if got := StatusOf("NoSuchCode"); got != http.StatusInternalServerError {
		t.Errorf("unknown code: %d", got)
	}
}

func TestWriteError(t *testing.T) {
	rec := httptest.NewRecorder()
	WriteError(rec, ErrorDetail{Code: CodeInvalid, Message: "must be positive", Field: "spec.port"})
	var b ErrorBody
	if err := json.Unmarshal(rec.Body.Bytes(), &b); err != nil {
		t.Fatal(err)
	}
	if rec.Code != http.StatusBadRequest || rec.Header().Get("Content-Type") != "application/json" ||
		b.Error != (ErrorDetail{Code: CodeInvalid, Message: "must be positive", Field: "spec.port"}) {
		t.Errorf("%d %s %+v", rec.Code, rec.Header().Get("Content-Type"), b)
	}
}
