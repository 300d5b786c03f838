// Package render formats zombiewatch's model for people and programs: the
// table a person reads at a glance, the ps-style zombie list, the --fds
// list, the host tables, the JSON objects, and the watches' samples as
// lines and JSON lines. Renderers only format: every fact and every
// sentence comes from internal/model and internal/diagnose.
//
// Strings a process controls (its name, its command line, user names from
// a container's passwd) are made printable before they reach a terminal,
// as ps does; JSON keeps them as data, escaped by the encoder.
package render

import (
	"encoding/json"
	"io"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/zombiewatch/zombiewatch/internal/diagnose"
	"github.com/zombiewatch/zombiewatch/internal/model"
)

// JSON writes p as one JSON object, indented for a person (indent) or on
// one line for a program: with thousands of zombies, indenting costs more
// than the rest of the encoding.
func JSON(w io.Writer, p *model.Process, indent bool) error {
	return encode(w, p, indent)
}

// JSONList writes several processes as one JSON array of the one-process
// objects.
func JSONList(w io.Writer, ps []*model.Process, indent bool) error {
	if ps == nil {
		ps = []*model.Process{}
	}
	return encode(w, ps, indent)
}

// Encode writes v as JSON (the one-process object with more keys, as
// --origin's), indented for a terminal.
func Encode(w io.Writer, v any, indent bool) error { return encode(w, v, indent) }

func encode(w io.Writer, v any, indent bool) error {
	enc := json.NewEncoder(w)
	if indent {
		enc.SetIndent("", "  ")
	}
	return enc.Encode(v)
}

// Age prints a duration the way a person says it: 45s, 3m02s, 2h05m, 3d04h.
func Age(d time.Duration) string { return diagnose.Age(d) }

func ageOf(seconds float64) string {
	return Age(time.Duration(seconds * float64(time.Second)))
}

// Printable makes s safe for a terminal, the way ps does: control
// characters (escape sequences, newlines, tabs) and bytes that are not
// UTF-8 become '?', so a process cannot clear the screen, retitle the
// window or split a table row by naming itself.
func Printable(s string) string {
	ok := true
	for _, r := range s {
		if r == utf8.RuneError || !unicode.IsPrint(r) {
			ok = false
			break
		}
	}
	if ok {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && n <= 1) || !unicode.IsPrint(r) {
			b.WriteByte('?')
		} else {
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}
