-- Each site's control settings (grid limits, NIV chase, SoE target, avoidance), kept whole
-- as JSON because the planner reads them whole; a site never configured uses the defaults.
create table powerplane.site_config (
  site text primary key,
  config jsonb not null,
  principal text not null,
  updated_at timestamptz not null default now()
);
