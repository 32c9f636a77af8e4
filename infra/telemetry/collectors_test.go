package telemetry_test

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/uptrace/bun/driver/pgdriver"

	"github.com/rdev-hq/rdev/domain"
	"github.com/rdev-hq/rdev/infra/telemetry"
	"github.com/rdev-hq/rdev/internal/testenv"
)

func TestQueueCollector(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		stats := domain.QueueStats{Queued: map[domain.Priority]int{domain.PriorityHigh: 3, domain.PriorityLow: 1}, Running: 2}
		c := telemetry.NewQueueCollector(func(context.Context) (domain.QueueStats, error) { return stats, nil }, nil)
		want := `
# HELP rdev_commands_running Commands RUNNING now.
# TYPE rdev_commands_running gauge
rdev_commands_running 2
# HELP rdev_queue_depth Commands QUEUED now, by priority.
# TYPE rdev_queue_depth gauge
rdev_queue_depth{priority="HIGH"} 3
rdev_queue_depth{priority="LOW"} 1
rdev_queue_depth{priority="NORMAL"} 0
rdev_queue_depth{priority="URGENT"} 0
`
		if err := testutil.CollectAndCompare(c, strings.NewReader(want)); err != nil {
			t.Error(err)
		}
	})
	t.Run("ErrTimeout", func(t *testing.T) {
		// A store that does not answer costs the scrape CollectTimeout at
		// most, and reports nothing.
		c := telemetry.NewQueueCollector(func(ctx context.Context) (domain.QueueStats, error) {
			<-ctx.Done()
			return domain.QueueStats{}, ctx.Err()
		}, nil)
		start := time.Now()
		if n := testutil.CollectAndCount(c); n != 0 {
			t.Errorf("%d metrics from a failed read, want 0", n)
		}
		if took := time.Since(start); took > telemetry.CollectTimeout+time.Second {
			t.Errorf("collecting took %v, past the timeout %v", took, telemetry.CollectTimeout)
		}
	})
}

// projects is a domain.ProjectRepository over a fixed list.
type projects []*domain.Project

func (ps projects) FindProjectByID(context.Context, string) (*domain.Project, error) {
	return nil, domain.Errorf(domain.ENOTFOUND, "no project")
}

func (ps projects) FindProjects(context.Context, domain.ProjectFilter) ([]*domain.Project, error) {
	return ps, nil
}

func TestProjectsCollector(t *testing.T) {
	c := telemetry.NewProjectsCollector(projects{
		{ID: "a", Status: domain.ProjectRunning}, {ID: "b", Status: domain.ProjectRunning}, {ID: "c", Status: domain.ProjectPending},
	}, nil)
	want := `
# HELP rdev_projects Projects known now (the pod informer's cache with Kubernetes), by status.
# TYPE rdev_projects gauge
rdev_projects{status="FAILED"} 0
rdev_projects{status="GONE"} 0
rdev_projects{status="NOT_READY"} 0
rdev_projects{status="PENDING"} 1
rdev_projects{status="RUNNING"} 2
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
}

func TestBreakerCollector(t *testing.T) {
	for state, want := range map[string]float64{"closed": 0, "half-open": 1, "open": 2} {
		c := telemetry.NewBreakerCollector("https://10.0.0.1:6443", func() string { return state })
		exp := `
# HELP rdev_circuit_breaker_state State of the circuit breaker in front of a Kubernetes API server: 0 closed, 1 half-open, 2 open.
# TYPE rdev_circuit_breaker_state gauge
rdev_circuit_breaker_state{cluster="https://10.0.0.1:6443"} ` + ftoa(want) + "\n"
		if err := testutil.CollectAndCompare(c, strings.NewReader(exp)); err != nil {
			t.Errorf("%s: %v", state, err)
		}
	}
}

func TestWarmStreamsCollector(t *testing.T) {
	c := telemetry.NewWarmStreamsCollector("https://10.0.0.1:6443", func() (int, int) { return 3, 1 })
	exp := `
# HELP rdev_kube_warm_streams Exec streams held open to project pods for their next commands, by state: ready, or opening.
# TYPE rdev_kube_warm_streams gauge
rdev_kube_warm_streams{cluster="https://10.0.0.1:6443",state="opening"} 1
rdev_kube_warm_streams{cluster="https://10.0.0.1:6443",state="ready"} 3
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(exp)); err != nil {
		t.Error(err)
	}
}

func TestConnectionsCollector(t *testing.T) {
	limits := domain.NewConnLimits(0, 0, 0)
	for range 2 {
		if _, err := limits.Open(&domain.Caller{}, domain.ConnSocket); err != nil {
			t.Fatal(err)
		}
	}
	release, err := limits.Open(&domain.Caller{}, domain.ConnStream)
	if err != nil {
		t.Fatal(err)
	}
	release()
	exp := `
# HELP rdev_open_connections WebSocket connections (from their connection_init on) and SSE streams open now in this process, by transport.
# TYPE rdev_open_connections gauge
rdev_open_connections{transport="sse"} 0
rdev_open_connections{transport="websocket"} 2
`
	if err := testutil.CollectAndCompare(telemetry.NewConnectionsCollector(limits), strings.NewReader(exp)); err != nil {
		t.Error(err)
	}
}

func TestAuthCollector(t *testing.T) {
	st := domain.AuthStats{CacheHits: 41, CacheMisses: 2, CachedCredentials: 3, Guarded: 5}
	exp := `
# HELP rdev_auth_cache_lookups_total Lookups of API keys in this process's credential cache, by result (a miss reads the key from the store).
# TYPE rdev_auth_cache_lookups_total counter
rdev_auth_cache_lookups_total{result="hit"} 41
rdev_auth_cache_lookups_total{result="miss"} 2
# HELP rdev_auth_cached_credentials Credentials held in this process's cache now.
# TYPE rdev_auth_cached_credentials gauge
rdev_auth_cached_credentials 3
# HELP rdev_guarded_connections WebSocket connections and SSE streams open now in this process that end when their API key is revoked, expires, is rotated away or narrowed.
# TYPE rdev_guarded_connections gauge
rdev_guarded_connections 5
`
	c := telemetry.NewAuthCollector(func() domain.AuthStats { return st })
	if err := testutil.CollectAndCompare(c, strings.NewReader(exp)); err != nil {
		t.Error(err)
	}
}

func ftoa(f float64) string { return itoa(int(f)) }

func TestDBCollector(t *testing.T) {
	dsn, _ := testenv.PostgresSchema(t)
	db := sql.OpenDB(pgdriver.NewConnector(pgdriver.WithDSN(dsn)))
	t.Cleanup(func() { _ = db.Close() })
	db.SetMaxOpenConns(1)
	c := telemetry.NewDBCollector(db)

	conn, err := db.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	// A second query waits for the one connection until it times out.
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if _, err := db.ExecContext(ctx, "SELECT 1"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a query past the pool's limit: %v, want a deadline", err)
	}
	want := `
# HELP rdev_db_connections_in_use Database connections in use now.
# TYPE rdev_db_connections_in_use gauge
rdev_db_connections_in_use 1
# HELP rdev_db_connections_idle Database connections idle now.
# TYPE rdev_db_connections_idle gauge
rdev_db_connections_idle 0
# HELP rdev_db_connections_max_open Most database connections the pool opens (0: no limit).
# TYPE rdev_db_connections_max_open gauge
rdev_db_connections_max_open 1
# HELP rdev_db_connections_open Database connections open now, in use or idle.
# TYPE rdev_db_connections_open gauge
rdev_db_connections_open 1
# HELP rdev_db_waits_total Times a query waited for a free database connection.
# TYPE rdev_db_waits_total counter
rdev_db_waits_total 1
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want),
		"rdev_db_connections_in_use", "rdev_db_connections_idle", "rdev_db_connections_max_open",
		"rdev_db_connections_open", "rdev_db_waits_total"); err != nil {
		t.Error(err)
	}
	_ = conn.Close()
	after := `
# HELP rdev_db_connections_in_use Database connections in use now.
# TYPE rdev_db_connections_in_use gauge
rdev_db_connections_in_use 0
# HELP rdev_db_connections_idle Database connections idle now.
# TYPE rdev_db_connections_idle gauge
rdev_db_connections_idle 1
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(after), "rdev_db_connections_in_use", "rdev_db_connections_idle"); err != nil {
		t.Errorf("after the connection is released: %v", err)
	}
}

func TestSecretsKeysCollector(t *testing.T) {
	ids, stale := []string{"aaaa", "bbbb"}, true
	c := telemetry.NewSecretsKeysCollector(func() ([]string, bool) { return ids, stale })
	want := `
# HELP rdev_secrets_key_file_stale 1 while the secrets key file changed and is not taken (the keys read before are kept).
# TYPE rdev_secrets_key_file_stale gauge
rdev_secrets_key_file_stale 1
# HELP rdev_secrets_keys Key-encryption keys of secrets held now, by ID; sealing is true for the one that seals.
# TYPE rdev_secrets_keys gauge
rdev_secrets_keys{key_id="aaaa",sealing="true"} 1
rdev_secrets_keys{key_id="bbbb",sealing="false"} 1
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
	ids, stale = nil, false
	if n := testutil.CollectAndCount(c); n != 1 {
		t.Errorf("without a key: %d metrics, want rdev_secrets_key_file_stale alone", n)
	}
}
