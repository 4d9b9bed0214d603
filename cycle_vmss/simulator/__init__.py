"""Local Azure simulator: a scale-set state machine (`backend`) behind HTTPS (`server`) or
called in-process (`inprocess`). Kept import-light; import the submodules you need."""
