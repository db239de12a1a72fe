-- Who caused each change of a battery's intended command source. A released override is
-- kept (marked) rather than deleted until the next override replaces it, and a cancelled
-- instruction keeps who cancelled it, so the control loop can name the principal behind a
-- return to dispatch or to local control in the command-source history.

alter table powerplane.control_overrides
  add column released_at timestamptz,
  add column released_by text;

alter table powerplane.dispatch_instructions
  add column cancelled_by text;

-- What drives the battery (instruction, override, automatic component), as a comparable
-- key: a change of it is a history row even when the source stays the same (e.g. MANUAL by
-- one operator, then MANUAL by another). Null on rows written before this migration.
alter table powerplane.command_source_state
  add column cause text;
