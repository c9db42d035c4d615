-- Freshness in market time: the bar a scan scored (on the paper exchange, replay time), so that
-- diagnostics can judge a replayed stack by its own clock rather than the wall's.
alter table public.scan_runs add column bar_time timestamptz;
create index scan_runs_bar_time_idx on public.scan_runs (timeframe, bar_time desc)
  where status in ('succeeded', 'partial') and not dry_run;

-- An executor resuming a signal looks up the pairs already reserved for it.
create index execution_orders_signal_idx on public.execution_orders (signal_id) where signal_id is not null;
