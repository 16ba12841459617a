package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// FieldError is one problem in a configuration, located by its key path
// (vrrp.instances[1].vrid). Path is empty for problems with the document as a
// whole, such as YAML syntax errors.
type FieldError struct {
	Path string
	// Value is the offending value as written (strings quoted, lists and
	// mappings not shown); empty when there is none to show.
	Value string
	Msg   string
	// Line and Column place the problem in the file, counting from 1; 0
	// when it has no place (a value from the environment, the file as a
	// whole). Column is 0 too when only the line is known.
	Line, Column int
	// Env is the environment variable the value came from, if it did.
	Env string
	// File is the file the problem is in; "" for Parse.
	File string
}

// Error formats the problem as "path: value msg", after where it is as
// compilers write it when it is in a file: FILE:LINE:COLUMN (FILE:LINE when
// the column is not known), or the environment variable the value came
// from.
func (e FieldError) Error() string {
	var b strings.Builder
	switch {
	case e.Env != "":
		b.WriteString("$" + e.Env + ": ")
	case e.File != "" && e.Line > 0 && e.Column > 0:
		fmt.Fprintf(&b, "%s:%d:%d: ", e.File, e.Line, e.Column)
	case e.File != "" && e.Line > 0:
		fmt.Fprintf(&b, "%s:%d: ", e.File, e.Line)
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	if e.Value != "" {
		b.WriteString(e.Value)
		b.WriteByte(' ')
	}
	b.WriteString(e.Msg)
	return b.String()
}

// ValidationError holds every problem found in a configuration. Load and
// Parse return it (as a *ValidationError) for any syntax, type or semantic
// problem.
type ValidationError struct {
	File     string // the file, when loaded with Load
	Errors   []FieldError
	Warnings []string // warnings found along the way; see Config.Warnings
}

// Error lists the problems one per line (see FieldError.Error), after a
// header naming the file when there is one.
func (e *ValidationError) Error() string {
	lines := make([]string, 0, len(e.Errors)+1)
	if e.File != "" {
		n := "problem"
		if len(e.Errors) != 1 {
			n = "problems"
		}
		lines = append(lines, fmt.Sprintf("config %s: %d %s:", e.File, len(e.Errors), n))
	}
	for _, fe := range e.Errors {
		lines = append(lines, fe.Error())
	}
	return strings.Join(lines, "\n")
}

// problems returns the ValidationError of file's problems, each naming the
// file.
func problems(file string, errs []FieldError, warns []string) *ValidationError {
	for i := range errs {
		errs[i].File = file
	}
	return &ValidationError{File: file, Errors: errs, Warnings: warns}
}

// Unwrap returns the individual FieldErrors, so errors.As finds them.
func (e *ValidationError) Unwrap() []error {
	errs := make([]error, len(e.Errors))
	for i, fe := range e.Errors {
		errs[i] = fe
	}
	return errs
}

// show renders a raw decoded value for FieldError.Value.
func show(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case string:
		return strconv.Quote(v)
	case time.Duration:
		return v.String()
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64)
	case float32:
		return strconv.FormatFloat(float64(v), 'g', -1, 32)
	case map[string]any, map[any]any, []any:
		return ""
	}
	return fmt.Sprint(v)
}

// kind names the YAML kind of a raw value for type-error messages.
func kind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64:
		return "an integer"
	case float32, float64:
		return "a number"
	case map[string]any, map[any]any:
		return "a mapping"
	case []any:
		return "a list"
	}
	return fmt.Sprintf("a %T", v)
}
