// A Runtime API on Go's net/http, the server Lambda's own Runtime API is built on: the bench's warm path against a
// compiled server that answers at once, and a check that a runtime's requests keep Lambda's order (no `next`
// while an event is unanswered, one post per event). It speaks bench/lean_api.py's control protocol on
// stdin/stdout: "port N" at start; "polls" -> "polls N"; "run N" -> N no-op events, each handed out to a waiting
// `next`, then "done <seconds> <JSON list of what was unexpected>". It ends with its control input.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

const (
	functionArn = "arn:aws:lambda:us-east-1:000000000000:function:bench"
	eventBody   = "{}"
	accepted    = "{\"status\":\"OK\"}\n"
)

type server struct {
	mu         sync.Mutex
	polls      int
	pending    string // the request id handed out and not answered yet
	unexpected []string
	events     chan string   // request ids to hand out, one at a time
	answered   chan struct{} // one per post that answered the pending request
}

func (s *server) note(what string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.unexpected) < 3 {
		s.unexpected = append(s.unexpected, what)
	}
}

func (s *server) next(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.polls++
	pending := s.pending
	s.mu.Unlock()
	if pending != "" {
		s.note("next while " + pending + " was unanswered")
		w.WriteHeader(http.StatusForbidden)
		io.WriteString(w, `{"errorType":"InvalidStateTransition"}`)
		return
	}
	select {
	case id := <-s.events:
		s.mu.Lock()
		s.pending = id
		s.mu.Unlock()
		header := w.Header()
		header.Set("Content-Type", "application/json")
		header.Set("Lambda-Runtime-Aws-Request-Id", id)
		header.Set("Lambda-Runtime-Deadline-Ms", strconv.FormatInt(time.Now().Add(time.Minute).UnixMilli(), 10))
		header.Set("Lambda-Runtime-Invoked-Function-Arn", functionArn)
		header.Set("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000;Sampled=0")
		io.WriteString(w, eventBody)
	case <-r.Context().Done(): // the runtime went away while it waited
	}
}

func (s *server) post(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	parts := strings.Split(r.URL.Path, "/")
	id, kind := parts[len(parts)-2], parts[len(parts)-1]
	s.mu.Lock()
	answers := s.pending != "" && id == s.pending
	if answers {
		s.pending = ""
	}
	s.mu.Unlock()
	if !answers {
		s.note("a post for " + id + ", which was not the request in hand")
		w.WriteHeader(http.StatusForbidden)
		io.WriteString(w, `{"errorType":"InvalidStateTransition"}`)
		return
	}
	if kind != "response" || string(body) != eventBody {
		s.note(fmt.Sprintf("%s post %q", kind, body))
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	io.WriteString(w, accepted)
	s.answered <- struct{}{}
}

func (s *server) run(count int, number *int) string {
	s.mu.Lock()
	s.unexpected = nil
	s.mu.Unlock()
	started := time.Now()
	for i := 0; i < count; i++ {
		*number++
		s.events <- fmt.Sprintf("%08x-0000-4000-8000-%012x", *number, *number)
		<-s.answered
	}
	elapsed := time.Since(started).Seconds()
	s.mu.Lock()
	defer s.mu.Unlock()
	unexpected, _ := json.Marshal(append([]string{}, s.unexpected...))
	return fmt.Sprintf("done %f %s", elapsed, unexpected)
}

func main() {
	s := &server{events: make(chan string), answered: make(chan struct{}, 1)}
	mux := http.NewServeMux()
	mux.HandleFunc("/2018-06-01/runtime/invocation/next", s.next)
	mux.HandleFunc("/2018-06-01/runtime/invocation/", s.post)
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	go http.Serve(listener, mux)
	fmt.Printf("port %d\n", listener.Addr().(*net.TCPAddr).Port)
	control := bufio.NewScanner(os.Stdin)
	number := 0
	for control.Scan() {
		words := strings.Fields(control.Text())
		switch {
		case len(words) == 1 && words[0] == "polls":
			s.mu.Lock()
			fmt.Printf("polls %d\n", s.polls)
			s.mu.Unlock()
		case len(words) == 2 && words[0] == "run":
			count, err := strconv.Atoi(words[1])
			if err != nil {
				fmt.Println("done 0 [\"bad run line\"]")
				continue
			}
			fmt.Println(s.run(count, &number))
		}
	}
}
