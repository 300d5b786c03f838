package server

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"
)

// ChildConfig is how a child serves its one connection.
type ChildConfig struct {
	// Hold keeps the child alive after it answered, as Part 3's
	// time.sleep does, so children pile up where they can be seen.
	Hold time.Duration
	// ReadTimeout cuts off a client that does not send its request: the
	// child's deadline, so the parent is never blocked by it.
	ReadTimeout time.Duration
	// MaxHeaderBytes bounds the request line and headers (431 beyond).
	MaxHeaderBytes int
}

// connFD is where the parent puts the connection in the child.
const connFD = 3

// ServeChild answers the one HTTP request on fd 3 and returns the exit
// code: 0 when it answered (whatever the status), 1 when it could not.
func ServeChild(cfg ChildConfig, log *slog.Logger) int {
	f := os.NewFile(connFD, "conn")
	conn, err := net.FileConn(f)
	f.Close()
	if err != nil {
		log.Warn("child: fd 3 is not a connection", "err", err)
		return 1
	}
	defer conn.Close()

	code, reason := answer(conn, cfg)
	body := "Hello, World!\n"
	if code != 200 {
		body = reason + "\n"
	}
	if code != 0 {
		conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if _, err := conn.Write(response(code, reason, body)); err != nil {
			log.Warn("child: write failed", "err", err)
			return 1
		}
	}
	if cfg.Hold > 0 {
		time.Sleep(cfg.Hold)
	}
	return 0
}

// answer reads the request and decides the status; 0 means say nothing
// (the client closed before sending anything).
func answer(conn net.Conn, cfg ChildConfig) (int, string) {
	conn.SetReadDeadline(time.Now().Add(cfg.ReadTimeout))
	lr := &limitedReader{r: conn, left: cfg.MaxHeaderBytes}
	br := bufio.NewReader(lr)
	_, err := http.ReadRequest(br)
	var ne net.Error
	switch {
	case err == nil:
		return 200, "OK"
	case lr.exceeded:
		return 431, "Request Header Fields Too Large"
	case errors.As(err, &ne) && ne.Timeout():
		return 408, "Request Timeout"
	case errors.Is(err, io.EOF) && lr.read == 0:
		return 0, ""
	default:
		return 400, "Bad Request"
	}
}

// limitedReader fails once more than left bytes were asked of it.
type limitedReader struct {
	r        io.Reader
	left     int
	read     int
	exceeded bool
}

var errHeaderTooLarge = errors.New("request header too large")

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.left <= 0 {
		l.exceeded = true
		return 0, errHeaderTooLarge
	}
	if len(p) > l.left {
		p = p[:l.left]
	}
	n, err := l.r.Read(p)
	l.left -= n
	l.read += n
	return n, err
}

// response is a complete HTTP/1.1 response that closes the connection.
func response(code int, reason, body string) []byte {
	return fmt.Appendf(nil, "HTTP/1.1 %d %s\r\nDate: %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %s\r\nConnection: close\r\n\r\n%s",
		code, reason, time.Now().UTC().Format(http.TimeFormat), strconv.Itoa(len(body)), body)
}
