package check

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/textproto"
	"strconv"
	"strings"
	"time"
)

// smtpProber is keepalived's SMTP_CHECK: connect, a 220 greeting, HELO
// answered with 250, then QUIT. Replies may span lines ("220-...",
// "220 ..."). The server has proved itself once HELO is accepted, so what
// it answers to QUIT (or whether it answers before the timeout) is only
// noted in the detail.
type smtpProber struct{ s Spec }

// maxSMTPReply bounds what an smtp probe reads from a server in all.
const maxSMTPReply = 64 << 10

var errReplyTooLong = fmt.Errorf("replies longer than %d bytes", maxSMTPReply)

func (p smtpProber) probe(ctx context.Context) outcome {
	c, err := dialerFor("tcp", p.s.Source, p.s.FWMark).DialContext(ctx, "tcp", p.s.Target.String())
	if err != nil {
		return classify(ctx, "connect", err)
	}
	defer c.Close()
	if d, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(d)
	}
	// Cancellation ends a read or write in progress.
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	return p.converse(ctx, c, c)
}

// converse holds the check's dialogue with a server that is read from
// from (at most maxSMTPReply bytes in all) and written to on to. ctx only
// classifies an I/O error (timeout or not).
func (p smtpProber) converse(ctx context.Context, from io.Reader, to io.Writer) outcome {
	cr := &cappedReader{r: from, n: maxSMTPReply}
	tr := textproto.NewReader(bufio.NewReader(cr))
	read := func(want int) (int, string, error) {
		code, msg, err := readReply(tr, want)
		if cr.refused {
			// The cap cut the last line read, and bufio's ReadLine passed
			// the piece on as a line: it is no reply.
			return 0, "", errReplyTooLong
		}
		return code, msg, err
	}
	w := textproto.NewWriter(bufio.NewWriter(to))
	if _, _, err := read(220); err != nil {
		return p.refused(ctx, w, "greeting", 220, err)
	}
	if err := w.PrintfLine("HELO %s", p.s.HeloName); err != nil {
		return classify(ctx, "HELO", err)
	}
	code, msg, err := read(250)
	if err != nil {
		return p.refused(ctx, w, "HELO "+p.s.HeloName, 250, err)
	}
	o := ok("HELO %s: %d %s", p.s.HeloName, code, firstLine(msg))
	if err := w.PrintfLine("QUIT"); err != nil {
		o.detail += "; " + classify(ctx, "QUIT", err).detail
	} else if _, _, err := read(221); err != nil {
		o.detail += "; " + smtpReplyFailure(ctx, "QUIT", 221, err).detail
	}
	return o
}

// refused judges a failed reply to what (want expected) and, when the
// server did answer with another code, says QUIT before closing, as RFC
// 5321 asks of a client turned away.
func (p smtpProber) refused(ctx context.Context, w *textproto.Writer, what string, want int, err error) outcome {
	var te *textproto.Error
	if errors.As(err, &te) {
		_ = w.PrintfLine("QUIT")
	}
	return smtpReplyFailure(ctx, what, want, err)
}

// smtpReplyFailure describes a reply that was not the wanted one.
func smtpReplyFailure(ctx context.Context, what string, want int, err error) outcome {
	var te *textproto.Error
	switch {
	case errors.As(err, &te):
		return fail(Failure, "%s: %d %s, want %d", what, te.Code, firstLine(te.Msg), want)
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return fail(Failure, "%s: connection closed", what)
	}
	return classify(ctx, what, err)
}

// readReply reads one SMTP reply, one line or several ("250-a", "250 b"),
// and returns its code and text (lines joined by \n). A code other than
// want is a *textproto.Error. Unlike textproto's ReadResponse, a line that
// is not a reply ends the read at once (a banner such as "SSH-2.0-..."
// would have it wait for a last line until the timeout).
func readReply(r *textproto.Reader, want int) (int, string, error) {
	code := 0
	var text []string
	for {
		line, err := r.ReadLine()
		if err != nil {
			return 0, "", err
		}
		c, convErr := strconv.Atoi(line[:min(3, len(line))])
		if len(line) < 3 || convErr != nil || c < 200 || c > 599 || len(line) > 3 && line[3] != ' ' && line[3] != '-' {
			return 0, "", textproto.ProtocolError(fmt.Sprintf("not an SMTP reply: %q", firstLine(line)))
		}
		if code != 0 && c != code {
			return 0, "", textproto.ProtocolError(fmt.Sprintf("reply %d continued with code %d", code, c))
		}
		code = c
		if len(line) > 4 {
			text = append(text, line[4:])
		}
		if len(line) == 3 || line[3] == ' ' {
			break
		}
	}
	msg := strings.Join(text, "\n")
	if code != want {
		return code, msg, &textproto.Error{Code: code, Msg: msg}
	}
	return code, msg, nil
}

// firstLine is the first line of a reply's text, shortened for a detail.
func firstLine(msg string) string {
	line, _, _ := strings.Cut(msg, "\n")
	if len(line) > 120 {
		line = line[:120] + "..."
	}
	return line
}

// cappedReader reads at most n bytes, then fails with errReplyTooLong and
// notes that it refused.
type cappedReader struct {
	r       io.Reader
	n       int
	refused bool
}

func (c *cappedReader) Read(p []byte) (int, error) {
	if c.n <= 0 {
		c.refused = true
		return 0, errReplyTooLong
	}
	n, err := c.r.Read(p[:min(len(p), c.n)])
	c.n -= n
	return n, err
}
