"""Local Azure simulator: a scale-set state machine (`backend`) whose snapshots `bodies` renders
in ARM's shapes, with the scenario's request faults (`faults`), served over HTTPS (`server`,
`http`, `routes`) or called in-process (`inprocess`). Kept import-light; import the submodules
you need."""
