package domain

import (
	"context"
	"testing"
)

func TestHealthService(t *testing.T) {
	check := func(name string, st ComponentStatus) HealthCheck {
		return HealthCheckFunc(func(context.Context) ComponentHealth {
			return ComponentHealth{Name: name, Status: st, Detail: name + " is " + string(st), Essential: name != "kubernetes"}
		})
	}

	t.Run("OK", func(t *testing.T) {
		s := NewHealthService(check("database", ComponentOK), check("kubernetes", ComponentDegraded))
		h := s.Check(t.Context())
		if !h.Ready || len(h.Components) != 2 || h.Components[1].Name != "kubernetes" {
			t.Errorf("Check = %+v, want ready with both components in order", h)
		}
		if err := s.Ready(t.Context()); err != nil {
			t.Errorf("Ready = %v", err)
		}
	})

	// A component that is not essential fails only the calls that need it.
	t.Run("OptionalDown", func(t *testing.T) {
		s := NewHealthService(check("database", ComponentOK), check("kubernetes", ComponentDown))
		if h := s.Check(t.Context()); !h.Ready || h.Components[1].Status != ComponentDown {
			t.Errorf("Check = %+v, want ready with kubernetes DOWN", h)
		}
		if err := s.Ready(t.Context()); err != nil {
			t.Errorf("Ready = %v", err)
		}
	})

	t.Run("ErrUnavailable", func(t *testing.T) {
		s := NewHealthService(check("database", ComponentOK), check("projects", ComponentDown))
		if h := s.Check(t.Context()); h.Ready {
			t.Errorf("Check = %+v, want not ready", h)
		}
		err := s.Ready(t.Context())
		wantCode(t, err, EUNAVAILABLE)
		if ErrorMessage(err) != "projects: projects is DOWN" {
			t.Errorf("Ready = %q, want the component and its detail", ErrorMessage(err))
		}
	})
}
