-- Market metadata, the shared instruments cache, signals (the execution queue) and scan runs.

create table public.markets (
  id bigint generated always as identity primary key,
  symbol text not null check (symbol ~ '^[A-Z0-9]{2,30}$'),
  category text not null check (category in ('spot', 'linear', 'inverse')),
  base text not null,
  quote text not null,
  status text not null default 'Trading' check (status in ('PreLaunch', 'Trading', 'Delivering', 'Closed')),
  tick_size numeric not null check (tick_size > 0),
  qty_step numeric not null check (qty_step > 0),
  min_qty numeric not null check (min_qty > 0),
  max_qty numeric not null,
  min_notional numeric not null default 0 check (min_notional >= 0),
  enabled boolean not null default true,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (category, symbol),
  check (max_qty >= min_qty)
);
create trigger markets_updated_at before update on public.markets
  for each row execute function public.set_updated_at();

alter table public.markets enable row level security;
revoke all on table public.markets from public, anon, authenticated, service_role;
grant select on table public.markets to anon, authenticated;
grant select, insert, update, delete on table public.markets to service_role;
create policy markets_readable_by_everyone on public.markets
  for select to anon, authenticated using (true);

-- One row per category, upserted: it never grows.
create table public.instruments_cache (
  category text primary key check (category in ('spot', 'linear', 'inverse')),
  payload jsonb not null,
  fetched_at timestamptz not null,
  expires_at timestamptz not null,
  updated_at timestamptz not null default now(),
  check (expires_at > fetched_at)
);
create trigger instruments_cache_updated_at before update on public.instruments_cache
  for each row execute function public.set_updated_at();

alter table public.instruments_cache enable row level security;
revoke all on table public.instruments_cache from public, anon, authenticated, service_role;
grant select, insert, update, delete on table public.instruments_cache to service_role;

create table public.signals (
  id uuid primary key default gen_random_uuid(),
  symbol text not null,
  category text not null default 'linear' check (category in ('spot', 'linear', 'inverse')),
  timeframe text not null
    check (timeframe in ('1', '3', '5', '15', '30', '60', '120', '240', '360', '720', 'D', 'W', 'M')),
  direction text not null check (direction in ('LONG', 'SHORT')),
  algorithm text not null check (algorithm in ('unirail_core', 'quantum_ai')),
  score numeric(5, 2) not null check (score between 0 and 100),
  confidence numeric(5, 4) not null check (confidence between 0 and 1),
  entry_price numeric not null check (entry_price > 0),
  stop_loss numeric not null check (stop_loss > 0),
  take_profit numeric not null check (take_profit > 0),
  atr numeric not null check (atr >= 0),
  components jsonb not null default '{}'::jsonb check (jsonb_typeof(components) = 'object'),
  bar_time timestamptz not null,
  expires_at timestamptz not null,
  status text not null default 'new'
    check (status in ('new', 'processing', 'executed', 'expired', 'skipped', 'failed')),
  claimed_at timestamptz,
  claimed_by text,
  processed_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint signals_one_per_bar unique (symbol, timeframe, algorithm, direction, bar_time),
  constraint signals_levels_ordered check (
    (direction = 'LONG' and stop_loss < entry_price and entry_price < take_profit)
    or (direction = 'SHORT' and take_profit < entry_price and entry_price < stop_loss)
  ),
  constraint signals_expire_after_bar check (expires_at > bar_time)
);
create trigger signals_updated_at before update on public.signals
  for each row execute function public.set_updated_at();
-- The executor's claim: oldest new signals first, skipping locked ones.
create index signals_new_queue_idx on public.signals (created_at) where status = 'new';
-- signals-api: newest first with a keyset cursor, optionally by symbol or algorithm.
create index signals_created_idx on public.signals (created_at desc, id desc);
create index signals_symbol_created_idx on public.signals (symbol, created_at desc);
create index signals_algorithm_score_idx on public.signals (algorithm, score desc);

alter table public.signals enable row level security;
revoke all on table public.signals from public, anon, authenticated, service_role;
grant select on table public.signals to anon, authenticated;
grant select, insert, update, delete on table public.signals to service_role;
create policy signals_readable_by_everyone on public.signals
  for select to anon, authenticated using (true);

-- One row per scanner run: what diagnostics reads for freshness.
create table public.scan_runs (
  id uuid primary key default gen_random_uuid(),
  timeframe text not null,
  algorithm text not null,
  status text not null default 'running' check (status in ('running', 'succeeded', 'partial', 'failed')),
  dry_run boolean not null default false,
  symbols_requested integer not null default 0 check (symbols_requested >= 0),
  symbols_scanned integer not null default 0 check (symbols_scanned >= 0),
  candidates integer not null default 0 check (candidates >= 0),
  signals_created integer not null default 0 check (signals_created >= 0),
  errors jsonb not null default '[]'::jsonb check (jsonb_typeof(errors) = 'array'),
  started_at timestamptz not null default now(),
  finished_at timestamptz,
  duration_ms integer check (duration_ms >= 0)
);
create index scan_runs_timeframe_started_idx on public.scan_runs (timeframe, started_at desc);

alter table public.scan_runs enable row level security;
revoke all on table public.scan_runs from public, anon, authenticated, service_role;
grant select, insert, update, delete on table public.scan_runs to service_role;
