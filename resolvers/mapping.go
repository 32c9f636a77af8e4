package resolvers

import (
	"slices"
	"strings"

	"github.com/rdev-hq/rdev/domain"
	"github.com/rdev-hq/rdev/graph/model"
)

// labels maps a label or annotation map to a list sorted by key.
func labels(m map[string]string) []*model.Label {
	out := make([]*model.Label, 0, len(m))
	for k, v := range m {
		out = append(out, &model.Label{Key: k, Value: v})
	}
	slices.SortFunc(out, func(a, b *model.Label) int { return strings.Compare(a.Key, b.Key) })
	return out
}

func auditFilter(in *model.AuditFilter) domain.AuditFilter {
	var f domain.AuditFilter
	if in == nil {
		return f
	}
	f.Actor, f.Action, f.Target = deref(in.Actor), deref(in.Action), deref(in.Target)
	if in.Since != nil {
		f.Since = *in.Since
	}
	if in.Until != nil {
		f.Until = *in.Until
	}
	return f
}

func projectFilter(in *model.ProjectFilter) domain.ProjectFilter {
	var f domain.ProjectFilter
	if in == nil {
		return f
	}
	if in.Status != nil {
		f.Status = *in.Status
	}
	if len(in.Labels) > 0 {
		f.Labels = make(map[string]string, len(in.Labels))
		for _, l := range in.Labels {
			f.Labels[l.Key] = l.Value
		}
	}
	return f
}
