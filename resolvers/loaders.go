package resolvers

import (
	"context"
	"fmt"
	"sync"

	"github.com/graph-gophers/dataloader/v7"

	"github.com/rdev-hq/rdev/domain"
)

// projectCommandsKey asks for the first page of one project's commands.
type projectCommandsKey struct {
	ProjectID string
	Status    domain.CommandStatus
	First     int
}

func (k projectCommandsKey) String() string {
	return fmt.Sprintf("%s/%s/%d", k.ProjectID, k.Status, k.First)
}

// loaders batch per-parent fields of one GraphQL operation into single store
// queries. They live for one operation, so nothing is cached across requests,
// and are made on first use: most operations select no per-parent field.
type loaders struct {
	svc  *domain.CommandService
	once sync.Once
	// commands is set by once.
	commands *dataloader.Loader[projectCommandsKey, domain.Page[*domain.Command]]

	networkSvc  *domain.ProjectNetworkService
	networkOnce sync.Once
	// networks is set by networkOnce.
	networks *dataloader.Loader[string, domain.ProjectNetwork]

	secretSvc  *domain.SecretService
	secretOnce sync.Once
	// secrets is set by secretOnce.
	secrets *dataloader.Loader[string, []*domain.Secret]
}

type loadersKey struct{}

func newLoaders(root *Resolver) *loaders {
	return &loaders{svc: root.CommandService, networkSvc: root.NetworkService, secretSvc: root.SecretService}
}

// commandsLoader returns the project commands loader, making it first.
func (l *loaders) commandsLoader() *dataloader.Loader[projectCommandsKey, domain.Page[*domain.Command]] {
	l.once.Do(func() {
		l.commands = dataloader.NewBatchedLoader(
			func(ctx context.Context, keys []projectCommandsKey) []*dataloader.Result[domain.Page[*domain.Command]] {
				return loadProjectCommands(ctx, l.svc, keys)
			},
			dataloader.WithCache[projectCommandsKey, domain.Page[*domain.Command]](&dataloader.NoCache[projectCommandsKey, domain.Page[*domain.Command]]{}),
		)
	})
	return l.commands
}

// loadProjectCommands answers a batch with one query per distinct
// (status, first) pair, which is one query for a typical operation.
func loadProjectCommands(ctx context.Context, svc *domain.CommandService, keys []projectCommandsKey) []*dataloader.Result[domain.Page[*domain.Command]] {
	type shape struct {
		status domain.CommandStatus
		first  int
	}
	groups := map[shape][]string{}
	for _, k := range keys {
		s := shape{k.Status, k.First}
		groups[s] = append(groups[s], k.ProjectID)
	}
	pages := map[projectCommandsKey]domain.Page[*domain.Command]{}
	errs := map[shape]error{}
	for s, ids := range groups {
		found, err := svc.ListForProjects(ctx, ids, s.status, s.first)
		errs[s] = err
		for id, p := range found {
			pages[projectCommandsKey{id, s.status, s.first}] = p
		}
	}
	out := make([]*dataloader.Result[domain.Page[*domain.Command]], len(keys))
	for i, k := range keys {
		out[i] = &dataloader.Result[domain.Page[*domain.Command]]{Data: pages[k], Error: errs[shape{k.Status, k.First}]}
	}
	return out
}

func (l *loaders) projectCommands(ctx context.Context, projectID string, status domain.CommandStatus, first int) (domain.Page[*domain.Command], error) {
	return l.commandsLoader().Load(ctx, projectCommandsKey{projectID, status, first})()
}

// projectNetwork returns the network policy of project id, read with those
// of the other projects of the operation in one query.
func (l *loaders) projectNetwork(ctx context.Context, id string) (domain.ProjectNetwork, error) {
	l.networkOnce.Do(func() {
		l.networks = dataloader.NewBatchedLoader(
			func(ctx context.Context, ids []string) []*dataloader.Result[domain.ProjectNetwork] {
				found, err := l.networkSvc.Of(ctx, ids)
				out := make([]*dataloader.Result[domain.ProjectNetwork], len(ids))
				for i, id := range ids {
					out[i] = &dataloader.Result[domain.ProjectNetwork]{Data: found[id], Error: err}
				}
				return out
			},
			dataloader.WithCache[string, domain.ProjectNetwork](&dataloader.NoCache[string, domain.ProjectNetwork]{}),
		)
	})
	return l.networks.Load(ctx, id)()
}

// projectSecrets returns the secrets of project id, read with those of the
// other projects of the operation in one read of the store.
func (l *loaders) projectSecrets(ctx context.Context, id string) ([]*domain.Secret, error) {
	l.secretOnce.Do(func() {
		l.secrets = dataloader.NewBatchedLoader(
			func(ctx context.Context, ids []string) []*dataloader.Result[[]*domain.Secret] {
				found, err := l.secretSvc.ListOf(ctx, ids)
				out := make([]*dataloader.Result[[]*domain.Secret], len(ids))
				for i, id := range ids {
					out[i] = &dataloader.Result[[]*domain.Secret]{Data: found[id], Error: err}
				}
				return out
			},
			dataloader.WithCache[string, []*domain.Secret](&dataloader.NoCache[string, []*domain.Secret]{}),
		)
	})
	return l.secrets.Load(ctx, id)()
}

func withLoaders(ctx context.Context, l *loaders) context.Context {
	return context.WithValue(ctx, loadersKey{}, l)
}

func loadersFrom(ctx context.Context) *loaders {
	return ctx.Value(loadersKey{}).(*loaders)
}
