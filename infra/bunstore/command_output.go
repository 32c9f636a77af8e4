package bunstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"unsafe"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/schema"

	"github.com/rdev-hq/rdev/domain"
)

// One INSERT statement of AppendOutput holds at most this many chunks and
// about this many bytes of output, so a large batch does not make one huge
// statement.
const (
	outputRowsPerStatement  = 1000
	outputBytesPerStatement = 1 << 20
)

// SQLSTATE and SQLite extended result code for foreign-key violations.
const (
	pgForeignKeyViolation           = "23503"
	sqliteConstraintForeignKey      = 787
	sqliteForeignKeyMessageFragment = "FOREIGN KEY constraint failed"
)

// AppendOutput stores chunks in one transaction: all or none. It returns
// EINVALID for a chunk with a Seq below 1 or an unknown stream, or, under a
// lease, a chunk of another command; ENOTFOUND if a chunk's command does not
// exist; ECONFLICT if a chunk's (CommandID, Seq) is already stored, unless
// under a lease, where such chunks are skipped.
//
// Under a fenced lease (one with an owner) the write is fenced: it locks the command's
// row if the command is RUNNING under the lease's owner and epoch, and stores
// nothing, returning domain.ErrLeaseLost, if it is not. With the row locked,
// no other process can end the command until the chunks are in, so a
// command's LastSeq, which the same write raises to its highest stored seq
// (and OutputBytes to the bytes stored), never falls behind its stored
// output.
//
// On Postgres the whole batch goes in one round trip, and commits durably:
// output a command was told is stored survives a crash of the database
// server (with synchronous_commit off, a crash lost the last few hundred
// milliseconds of it while the command's lastSeq claimed it).
func (s *Store) AppendOutput(ctx context.Context, lease domain.Lease, chunks []domain.OutputChunk) error {
	if len(chunks) == 0 {
		return nil
	}
	if lease.Fenced() {
		for _, ch := range chunks {
			if ch.CommandID != lease.CommandID {
				return domain.Errorf(domain.EINVALID, "command output: a chunk of command %s under the lease of %s", ch.CommandID, lease.CommandID)
			}
		}
	}
	var err error
	if s.isPostgres() {
		var batches [][]*outputRow
		if batches, err = outputBatches(chunks); err != nil {
			return err
		}
		err = s.appendOutputPG(ctx, lease, batches)
	} else {
		for _, ch := range chunks {
			if err := checkChunk(ch); err != nil {
				return err
			}
		}
		err = s.appendOutputSQLite(ctx, lease, chunks)
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, domain.ErrLeaseLost):
		return fmt.Errorf("command output %s: %w", lease.CommandID, err)
	case isUniqueViolation(err):
		return domain.Errorf(domain.ECONFLICT, "command output: a chunk's sequence number is already stored")
	case isForeignKeyViolation(err):
		return domain.Errorf(domain.ENOTFOUND, "command output: no such command")
	default:
		return fmt.Errorf("append command output: %w", translate(err))
	}
}

// appendOutputPG sends every INSERT as one multi-statement query: Postgres
// runs it as one implicit transaction, rolled back whole if a statement
// fails.
func (s *Store) appendOutputPG(ctx context.Context, lease domain.Lease, batches [][]*outputRow) error {
	var sb strings.Builder
	gen := s.db.QueryGen()
	var buf []byte
	for i, b := range batches {
		var err error
		if !lease.Fenced() {
			buf, err = s.db.NewInsert().Model(&b).AppendQuery(gen, buf[:0])
		} else {
			buf = appendFencedInsertPG(gen, buf[:0], lease, b)
		}
		if err != nil {
			return fmt.Errorf("format insert: %w", err)
		}
		if i > 0 {
			sb.WriteString(";\n")
		}
		sb.Write(buf)
	}
	res, err := s.db.ExecContext(ctx, sb.String())
	if err != nil || !lease.Fenced() {
		return err
	}
	// The result is the last statement's, and every statement finds the
	// lease as the first did: held and locked, or lost for good.
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		return domain.ErrLeaseLost
	}
	return nil
}

// fencedInsertPG is one statement of a fenced append: it locks the command's
// row if the lease holds, inserts the chunks only then (skipping any already
// stored, as a retried write has), and raises the command's last_seq and
// output_bytes by what it inserted. It updates one row if the lease holds,
// none if it is lost. The values are cast, as a SELECT does not take their
// types from the table.
const fencedInsertPG = `WITH fence AS (
	SELECT id FROM commands WHERE id = ? AND status = 'RUNNING' AND owner = ? AND lease_epoch = ? FOR UPDATE
), ins AS (
	INSERT INTO command_output (command_id, seq, stream, data, at)
	SELECT v.command_id, v.seq, v.stream, v.data, v.at FROM fence, (VALUES ?) AS v (command_id, seq, stream, data, at)
	ON CONFLICT DO NOTHING
	RETURNING seq, length(data) AS n
)
UPDATE commands SET last_seq = GREATEST(commands.last_seq, (SELECT coalesce(max(seq), 0) FROM ins)),
	output_bytes = commands.output_bytes + (SELECT coalesce(sum(n), 0) FROM ins)
FROM fence WHERE commands.id = fence.id`

func appendFencedInsertPG(gen schema.QueryGen, dst []byte, lease domain.Lease, rows []*outputRow) []byte {
	var values []byte
	for i, r := range rows {
		if i > 0 {
			values = append(values, ", "...)
		}
		values = gen.AppendQuery(values, "(?, ?::bigint, ?, ?::bytea, ?::timestamptz)", r.CommandID, r.Seq, r.Stream, r.Data, r.At)
	}
	return gen.AppendQuery(dst, fencedInsertPG, lease.CommandID, lease.Owner, lease.Epoch, bun.Safe(values))
}

// appendOutputSQLite inserts with one prepared statement and bound
// parameters: SQLite then never parses the output itself as SQL text, which
// bun's inlined (hex) literals would make it do. With segments (see
// StoreOutputIn) the rows say where in them each chunk's bytes are;
// without, each row holds its bytes, bound straight from the chunk's string,
// not copied into an outputRow first: the driver copies a bound blob anyway.
// Under a lease, the command's row is updated first, which checks the lease;
// the transaction holds the database's write lock from its start.
func (s *Store) appendOutputSQLite(ctx context.Context, lease domain.Lease, chunks []domain.OutputChunk) error {
	return s.inTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		if lease.Fenced() {
			var err error
			if chunks, err = s.fenceSQLite(ctx, tx, lease, chunks); err != nil || len(chunks) == 0 {
				return err
			}
		}
		if s.segments == nil {
			return s.insertOutputSQLite(ctx, tx, chunks, nil)
		}
		insert := func(spans []segmentSpan) error { return s.insertOutputSQLite(ctx, tx, chunks, spans) }
		last := func() (segmentSpan, bool, error) { return lastInSegment(ctx, tx) }
		return s.segments.append(chunks, insert, last)
	})
}

// fenceSQLite checks lease in tx, drops the chunks already stored (those at
// or below the command's last_seq: a fenced writer stores in seq order),
// and raises the command's last_seq and output_bytes by the rest, which it
// returns.
func (s *Store) fenceSQLite(ctx context.Context, tx bun.Tx, lease domain.Lease, chunks []domain.OutputChunk) ([]domain.OutputChunk, error) {
	var last int64
	err := tx.NewSelect().Model((*commandRow)(nil)).Column("last_seq").
		Where("id = ?", lease.CommandID).
		Where("status = ?", string(domain.CommandRunning)).
		Where("owner = ?", lease.Owner).
		Where("lease_epoch = ?", lease.Epoch).
		Scan(ctx, &last)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, domain.ErrLeaseLost
	} else if err != nil {
		return nil, err
	}
	fresh := chunks[:0:0]
	var size int64
	for _, ch := range chunks {
		if ch.Seq > last {
			fresh = append(fresh, ch)
			size += int64(len(ch.Data))
		}
	}
	if len(fresh) == 0 {
		return nil, nil
	}
	_, err = tx.NewUpdate().Model((*commandRow)(nil)).
		Set("last_seq = max(last_seq, ?)", fresh[len(fresh)-1].Seq).
		Set("output_bytes = output_bytes + ?", size).
		Where("id = ?", lease.CommandID).
		Exec(ctx)
	return fresh, err
}

// lastInSegment returns the span of the chunk stored last in a segment: the
// newest such row (the highest rowid) holds the highest segment and, in it,
// the highest offset, as appends take the write lock in turn.
func lastInSegment(ctx context.Context, tx bun.Tx) (segmentSpan, bool, error) {
	var span segmentSpan
	err := tx.QueryRowContext(ctx, "SELECT segment, segment_offset, size FROM command_output WHERE segment IS NOT NULL ORDER BY rowid DESC LIMIT 1").
		Scan(&span.segment, &span.offset, &span.size)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return segmentSpan{}, false, nil
	case err != nil:
		return segmentSpan{}, false, err
	}
	return span, true, nil
}

// insertOutputSQLite inserts the rows of chunks: with their bytes, or, with
// spans, with where in the segments their bytes are.
func (s *Store) insertOutputSQLite(ctx context.Context, tx bun.Tx, chunks []domain.OutputChunk, spans []segmentSpan) error {
	stmt, err := tx.PrepareContext(ctx, "INSERT INTO command_output (command_id, seq, stream, data, at, segment, segment_offset, size) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
	if err != nil {
		return err
	}
	defer func() { _ = stmt.Close() }()
	var at []byte
	for i, ch := range chunks {
		// The time is bound as the dialect writes it, so reads parse it
		// the same way as every other stored time.
		at = s.db.Dialect().AppendTime(at[:0], storedTime(ch.At))
		data, segment, offset := blob(ch.Data), any(nil), any(nil)
		if spans != nil {
			data, segment, offset = []byte{}, spans[i].segment, spans[i].offset
		}
		if _, err := stmt.ExecContext(ctx, ch.CommandID, ch.Seq, string(ch.Stream), data, strings.Trim(string(at), "'"), segment, offset, len(ch.Data)); err != nil {
			return err
		}
	}
	return nil
}

// outputSize is the SQL expression of a command_output row's size in bytes:
// on SQLite, whose rows may keep their bytes in segments, its size column.
func (s *Store) outputSize() bun.Safe {
	if s.isPostgres() {
		return bun.Safe("length(data)")
	}
	return bun.Safe("size")
}

// blob returns the bytes of s without copying them, to be bound as a BLOB
// parameter: database/sql passes a []byte to the driver as it is, and the
// driver copies it before the statement runs, so nothing writes to s. The
// empty string gives an empty, non-nil slice, as a nil one binds NULL.
func blob(s string) []byte {
	if s == "" {
		return []byte{}
	}
	return unsafe.Slice(unsafe.StringData(s), len(s))
}

// outputBatches validates chunks and splits them into INSERT-sized batches.
func outputBatches(chunks []domain.OutputChunk) ([][]*outputRow, error) {
	var batches [][]*outputRow
	var cur []*outputRow
	size := 0
	for _, ch := range chunks {
		if err := checkChunk(ch); err != nil {
			return nil, err
		}
		if len(cur) == outputRowsPerStatement || (len(cur) > 0 && size+len(ch.Data) > outputBytesPerStatement) {
			batches, cur, size = append(batches, cur), nil, 0
		}
		cur = append(cur, newOutputRow(ch))
		size += len(ch.Data)
	}
	return append(batches, cur), nil
}

// checkChunk returns EINVALID for a chunk with a Seq below 1 or an unknown
// stream.
func checkChunk(ch domain.OutputChunk) error {
	if ch.Seq < 1 {
		return domain.Errorf(domain.EINVALID, "command output %s: sequence number %d is below 1", ch.CommandID, ch.Seq)
	}
	if ch.Stream != domain.Stdout && ch.Stream != domain.Stderr {
		return domain.Errorf(domain.EINVALID, "command output %s: unknown stream %q", ch.CommandID, ch.Stream)
	}
	return nil
}

// ReadOutput returns the chunks of commandID with Seq above afterSeq, in Seq
// order: at most limit of them (all when limit is 0) and, when maxBytes is
// above 0, none after the one that brings their bytes to maxBytes. A
// command without output, or an unknown one, has none.
func (s *Store) ReadOutput(ctx context.Context, commandID string, afterSeq int64, limit, maxBytes int) ([]domain.OutputChunk, error) {
	var out []domain.OutputChunk
	var err error
	r := outputRead{commandID: commandID, afterSeq: afterSeq, limit: limit, maxBytes: maxBytes}
	if s.isPostgres() {
		// A row holds its bytes: the query keeps to maxBytes.
		out, err = readOutput(ctx, s.db, r, nil, func(r *outputRow) (domain.OutputChunk, error) {
			return r.chunk(), nil
		})
	} else {
		// A row holds its size and where its bytes are, which are read
		// after maxBytes has been kept to. (Rows stored before segments
		// hold their bytes: a read of those loads up to limit of them.)
		size := func(r *sqliteOutputRow) int { return int(r.Size) }
		out, err = readOutput(ctx, s.db, r, size, s.sqliteChunk)
	}
	if err != nil {
		return nil, fmt.Errorf("read output of command %s: %w", commandID, translate(err))
	}
	return out, nil
}

// outputRead is what ReadOutput asks for.
type outputRead struct {
	commandID       string
	afterSeq        int64
	limit, maxBytes int
}

// readOutput selects the output rows R that r asks for and converts each
// with chunk. It keeps to r.maxBytes with size, a row's size, before it
// converts any row, or, if size is nil, in the query.
func readOutput[R any](ctx context.Context, db *bun.DB, r outputRead, size func(*R) int, chunk func(*R) (domain.OutputChunk, error)) ([]domain.OutputChunk, error) {
	var rows []*R
	q := db.NewSelect().Model(&rows).
		Where("?TableAlias.command_id = ?", r.commandID).
		Where("?TableAlias.seq > ?", r.afterSeq).
		OrderExpr("?TableAlias.seq")
	if r.limit > 0 {
		q = q.Limit(int64(r.limit))
	}
	if r.maxBytes > 0 && size == nil {
		// Each row's bytes_before, the bytes of the rows before it, is a
		// running sum in the database: only the rows returned leave it.
		q = q.ColumnExpr("?TableAlias.*").
			ColumnExpr("sum(length(?TableAlias.data)) OVER (ORDER BY ?TableAlias.seq ROWS UNBOUNDED PRECEDING) - length(?TableAlias.data) AS bytes_before")
		q = db.NewSelect().Model(&rows).ModelTableExpr("(?) AS ?TableAlias", q).
			Where("?TableAlias.bytes_before < ?", r.maxBytes).
			OrderExpr("?TableAlias.seq")
	}
	if err := noRows(q.Scan(ctx)); err != nil {
		return nil, err
	}
	if r.maxBytes > 0 && size != nil {
		n, bytes := 0, 0
		for ; n < len(rows) && bytes < r.maxBytes; n++ {
			bytes += size(rows[n])
		}
		rows = rows[:n]
	}
	out := make([]domain.OutputChunk, 0, len(rows))
	for _, r := range rows {
		ch, err := chunk(r)
		if err != nil {
			return nil, err
		}
		out = append(out, ch)
	}
	return out, nil
}

// sqliteChunk is the chunk of r, with its bytes read from its segment if
// they are in one.
func (s *Store) sqliteChunk(r *sqliteOutputRow) (domain.OutputChunk, error) {
	ch := r.chunk()
	if r.Segment == nil {
		return ch, nil
	}
	if s.segments == nil || r.SegmentOffset == nil {
		return ch, fmt.Errorf("chunk %d is in output segment %d, which this store does not read", r.Seq, *r.Segment)
	}
	var err error
	ch.Data, err = s.segments.read(segmentSpan{segment: int(*r.Segment), offset: *r.SegmentOffset, size: r.Size})
	return ch, err
}

// isForeignKeyViolation reports whether err is a foreign-key violation,
// matching the drivers' errors by their methods like isUniqueViolation.
func isForeignKeyViolation(err error) bool {
	if pe, ok := errors.AsType[pgError](err); ok {
		return pe.Field('C') == pgForeignKeyViolation
	}
	if se, ok := errors.AsType[sqliteError](err); ok {
		return se.Code() == sqliteConstraintForeignKey || strings.Contains(se.Error(), sqliteForeignKeyMessageFragment)
	}
	return false
}
