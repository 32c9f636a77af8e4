package domain

import "context"

// A caller sees and acts on only the commands of the projects in its
// project scope (see ProjectScope): out of it a command is ENOTFOUND, as if
// it did not exist, and lists leave it out.

// findCommand returns command id if the caller's project scope admits its
// project, and ENOTFOUND otherwise.
func (s *CommandService) findCommand(ctx context.Context, caller *Caller, id string) (*Command, error) {
	if !validID(id) {
		return nil, commandNotFound(id)
	}
	c, err := s.commands.FindCommandByID(ctx, id)
	if err != nil {
		return nil, err
	}
	if err := s.admitCommand(ctx, caller, c); err != nil {
		return nil, err
	}
	return c, nil
}

// admitCommand returns ENOTFOUND, naming c, unless the caller's project
// scope admits c's project.
func (s *CommandService) admitCommand(ctx context.Context, caller *Caller, c *Command) error {
	ok, err := scopeAdmits(ctx, s.projects, caller.Projects(), c.ProjectID)
	if err != nil {
		return err
	}
	if !ok {
		return commandNotFound(c.ID)
	}
	return nil
}

// admitProject returns ENOTFOUND, naming the project, unless the caller's
// project scope admits it.
func admitProject(ctx context.Context, projects ProjectRepository, caller *Caller, id string) error {
	ok, err := scopeAdmits(ctx, projects, caller.Projects(), id)
	if err != nil {
		return err
	}
	if !ok {
		return projectNotFound(id)
	}
	return nil
}

func projectNotFound(id string) error {
	return Errorf(ENOTFOUND, "project %q not found", Clip(id))
}
