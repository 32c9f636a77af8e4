package resolvers

import (
	"context"
	"fmt"

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
// queries. They live for one operation, so nothing is cached across requests.
type loaders struct {
	commands *dataloader.Loader[projectCommandsKey, domain.Page[*domain.Command]]
}

type loadersKey struct{}

func newLoaders(svc *domain.CommandService) *loaders {
	return &loaders{commands: dataloader.NewBatchedLoader(
		func(ctx context.Context, keys []projectCommandsKey) []*dataloader.Result[domain.Page[*domain.Command]] {
			return loadProjectCommands(ctx, svc, keys)
		},
		dataloader.WithCache[projectCommandsKey, domain.Page[*domain.Command]](&dataloader.NoCache[projectCommandsKey, domain.Page[*domain.Command]]{}),
	)}
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
	return l.commands.Load(ctx, projectCommandsKey{projectID, status, first})()
}

func withLoaders(ctx context.Context, l *loaders) context.Context {
	return context.WithValue(ctx, loadersKey{}, l)
}

func loadersFrom(ctx context.Context) *loaders {
	return ctx.Value(loadersKey{}).(*loaders)
}
