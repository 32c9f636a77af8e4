package domain

import (
	"context"
	"reflect"
	"testing"
)

func TestAuthorize(t *testing.T) {
	reader := &APIKey{ID: "0123456789abcdef", Scopes: Scopes{ScopeKeysRead}}
	admin := &APIKey{ID: "0123456789abcdeg", Scopes: Scopes{ScopeAdmin}}

	for _, tt := range []struct {
		name   string
		caller *Caller
		scope  Scope
		code   string
	}{
		{"OK", &Caller{Key: reader}, ScopeKeysRead, ""},
		{"OKAdmin", &Caller{Key: admin}, ScopeWebhooksWrite, ""},
		{"OKOperator", &Caller{Operator: true}, ScopeKeysWrite, ""},
		{"OKOperatorAdmin", &Caller{Operator: true}, ScopeAdmin, ""},
		{"ErrForbidden", &Caller{Key: reader}, ScopeKeysWrite, EFORBIDDEN},
		{"ErrForbiddenAdmin", &Caller{Key: reader}, ScopeAdmin, EFORBIDDEN},
		{"ErrForbiddenNoScopes", &Caller{Key: &APIKey{ID: "0123456789abcdef"}}, ScopeKeysRead, EFORBIDDEN},
		{"ErrUnauthenticated", nil, ScopeKeysRead, EUNAUTHENTICATED},
		{"ErrUnauthenticatedEmptyCaller", &Caller{RequestID: "r1"}, ScopeKeysRead, EUNAUTHENTICATED},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			if tt.caller != nil {
				ctx = NewContextWithCaller(ctx, tt.caller)
			}
			got, err := Authorize(ctx, tt.scope)
			wantCode(t, err, tt.code)
			if tt.code == "" && got != tt.caller {
				t.Errorf("Authorize returned %+v, want the context's caller %+v", got, tt.caller)
			}
			if tt.code != "" && got != nil {
				t.Errorf("Authorize returned %+v with an error", got)
			}
		})
	}

	t.Run("MessageNamesScope", func(t *testing.T) {
		_, err := Authorize(NewContextWithCaller(t.Context(), &Caller{Key: reader}), ScopeAuditRead)
		if got, want := ErrorMessage(err), `this API key lacks the "audit:read" scope`; got != want {
			t.Errorf("message = %q, want %q", got, want)
		}
	})

	t.Run("MessageSaysHowToAuthenticate", func(t *testing.T) {
		_, err := Authorize(t.Context(), ScopeAuditRead)
		if got, want := ErrorMessage(err), "authentication required: send Authorization: Bearer <API key>"; got != want {
			t.Errorf("message = %q, want %q", got, want)
		}
	})
}

func TestCaller(t *testing.T) {
	key := &APIKey{ID: "0123456789abcdef", Scopes: Scopes{ScopeKeysRead, ScopeProjectsRead}}
	for _, tt := range []struct {
		name   string
		caller *Caller
		scopes Scopes
		keyID  string
	}{
		{"Nil", nil, nil, ""},
		{"Empty", &Caller{}, nil, ""},
		{"Key", &Caller{Key: key}, key.Scopes, key.ID},
		{"Operator", &Caller{Operator: true}, Scopes{ScopeAdmin}, ""},
		// The operator flag wins: the CLI is never limited by a key.
		{"OperatorWithKey", &Caller{Operator: true, Key: key}, Scopes{ScopeAdmin}, key.ID},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.caller.Scopes(); !reflect.DeepEqual(got, tt.scopes) {
				t.Errorf("Scopes() = %q, want %q", got, tt.scopes)
			}
			if got := tt.caller.KeyID(); got != tt.keyID {
				t.Errorf("KeyID() = %q, want %q", got, tt.keyID)
			}
		})
	}
}

func TestCallerFromContext(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		c := &Caller{Key: &APIKey{ID: "0123456789abcdef"}, RequestID: "r1"}
		if got := CallerFromContext(NewContextWithCaller(t.Context(), c)); got != c {
			t.Errorf("CallerFromContext = %+v, want %+v", got, c)
		}
	})

	t.Run("None", func(t *testing.T) {
		if got := CallerFromContext(t.Context()); got != nil {
			t.Errorf("CallerFromContext = %+v, want nil", got)
		}
	})

	t.Run("OtherValueWithSameName", func(t *testing.T) {
		type callerKey struct{}
		ctx := context.WithValue(t.Context(), callerKey{}, &Caller{Operator: true})
		if got := CallerFromContext(ctx); got != nil {
			t.Errorf("CallerFromContext = %+v, want nil", got)
		}
	})

	t.Run("Innermost", func(t *testing.T) {
		outer, inner := &Caller{RequestID: "outer"}, &Caller{RequestID: "inner"}
		ctx := NewContextWithCaller(NewContextWithCaller(t.Context(), outer), inner)
		if got := CallerFromContext(ctx); got != inner {
			t.Errorf("CallerFromContext = %+v, want %+v", got, inner)
		}
	})
}

func TestNewOperatorContext(t *testing.T) {
	ctx := NewOperatorContext(t.Context())
	c := CallerFromContext(ctx)
	if c == nil || !c.Operator || c.Key != nil {
		t.Fatalf("caller = %+v, want the operator", c)
	}
	for _, s := range AllScopes {
		if _, err := Authorize(ctx, s); err != nil {
			t.Errorf("Authorize(operator, %q): %v", s, err)
		}
	}
}
