package domain

import (
	"bytes"
)

// DefaultMaxAgentLine is the longest line an AgentParser decodes, unless told
// otherwise: Claude Code prints a whole tool result (a file read, a long
// command's output) on one line, so it is generous.
const DefaultMaxAgentLine = 4 << 20

// AgentParser turns an agent CLI's standard output, in chunks as they
// arrive, into events, through its AgentProtocol. Chunks may split lines
// anywhere; what a run yields does not depend on where. Lines that are only
// white space yield nothing; a line longer than the bound yields AgentRaw
// events of consecutive pieces of at most that many bytes (cut at UTF-8
// character boundaries where there is one), so memory stays bounded and no
// byte is lost. An AgentParser is not safe for concurrent use: one per run.
type AgentParser struct {
	proto   AgentProtocol
	maxLine int
	// partial is the line read so far, without a line end yet.
	partial []byte
	// overlong says that the line in progress passed maxLine: its pieces go
	// out as AgentRaw, and it is not decoded.
	overlong bool
}

// NewAgentParser returns a parser of p's output that decodes lines of up to
// maxLine bytes (DefaultMaxAgentLine if maxLine is 0 or less).
func NewAgentParser(p AgentProtocol, maxLine int) *AgentParser {
	if maxLine <= 0 {
		maxLine = DefaultMaxAgentLine
	}
	return &AgentParser{proto: p, maxLine: maxLine}
}

// Parse reads chunk and returns the events of the lines it completed (and
// pieces of an overlong line), in order. It does not keep chunk.
func (p *AgentParser) Parse(chunk []byte) []AgentEvent {
	var events []AgentEvent
	for len(chunk) > 0 {
		i := bytes.IndexByte(chunk, '\n')
		if i < 0 {
			p.partial = append(p.partial, chunk...)
			events = p.cutOverlong(events)
			break
		}
		line := chunk[:i]
		if len(p.partial) > 0 {
			p.partial = append(p.partial, line...)
			line = p.partial
		}
		events = p.endLine(events, line)
		chunk = chunk[i+1:]
	}
	return events
}

// Close returns the events of the last line, if the output did not end with
// a line end. The parser is then empty, as new.
func (p *AgentParser) Close() []AgentEvent {
	if len(p.partial) == 0 {
		p.overlong = false
		return nil
	}
	return p.endLine(nil, p.partial)
}

// endLine appends the events of a whole line (or the rest of an overlong
// one) to events and starts a new line. line is p.partial if that held the
// start of the line.
func (p *AgentParser) endLine(events []AgentEvent, line []byte) []AgentEvent {
	if len(line) > p.maxLine {
		// Cut as if it had come in pieces, so where chunks split the output
		// makes no difference.
		if len(p.partial) == 0 {
			p.partial = append(p.partial, line...)
		}
		events = p.cutOverlong(events)
		line = p.partial
	}
	line = bytes.TrimSuffix(line, []byte{'\r'})
	switch {
	case p.overlong:
		if len(line) > 0 {
			events = append(events, &AgentRaw{Line: string(line)})
		}
	case len(bytes.TrimSpace(line)) == 0:
	default:
		decoded := p.proto.DecodeLine(line)
		if len(decoded) == 0 {
			// The protocol broke its promise; the line still goes out.
			decoded = []AgentEvent{&AgentRaw{Line: string(line)}}
		}
		events = append(events, decoded...)
	}
	p.partial = p.partial[:0]
	p.overlong = false
	return events
}

// cutOverlong sends out pieces of the partial line while it is longer than
// maxLine, keeping the rest.
func (p *AgentParser) cutOverlong(events []AgentEvent) []AgentEvent {
	for len(p.partial) > p.maxLine {
		cut := runeBoundary(p.partial, p.maxLine)
		events = append(events, &AgentRaw{Line: string(p.partial[:cut])})
		n := copy(p.partial, p.partial[cut:])
		p.partial = p.partial[:n]
		p.overlong = true
	}
	return events
}
