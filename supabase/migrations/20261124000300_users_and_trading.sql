-- Per-user tables: exchange accounts (encrypted keys), preferences, orders and their event log.

create table public.user_trading_accounts (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null references auth.users (id) on delete cascade,
  exchange text not null default 'bybit' check (exchange in ('bybit')),
  environment text not null check (environment in ('mainnet', 'testnet', 'demo', 'paper')),
  -- AES-256-GCM ciphertexts made in the application; the database never sees a plain key.
  api_key_encrypted text not null,
  api_secret_encrypted text not null,
  key_version integer not null check (key_version > 0),
  key_hint text not null check (char_length(key_hint) <= 4),
  is_active boolean not null default true,
  last_used_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (user_id, exchange, environment)
);
create index user_trading_accounts_user_idx on public.user_trading_accounts (user_id);
create trigger user_trading_accounts_updated_at before update on public.user_trading_accounts
  for each row execute function public.set_updated_at();
create trigger user_trading_accounts_audit after insert or update or delete on public.user_trading_accounts
  for each row execute function public.audit_row_change('api_key_encrypted', 'api_secret_encrypted');

alter table public.user_trading_accounts enable row level security;
revoke all on table public.user_trading_accounts from public, anon, authenticated, service_role;
-- Owners see only the non-secret columns: the ciphertext columns are not granted at all.
grant select (id, user_id, exchange, environment, key_version, key_hint, is_active, last_used_at,
              created_at, updated_at)
  on table public.user_trading_accounts to authenticated;
grant delete on table public.user_trading_accounts to authenticated;
grant select, insert, update, delete on table public.user_trading_accounts to service_role;
create policy user_trading_accounts_owner_reads on public.user_trading_accounts
  for select to authenticated using (user_id = (select auth.uid()));
create policy user_trading_accounts_owner_deletes on public.user_trading_accounts
  for delete to authenticated using (user_id = (select auth.uid()));

create table public.trading_preferences (
  user_id uuid primary key references auth.users (id) on delete cascade,
  auto_trade_enabled boolean not null default false,
  algorithms text[] not null default '{unirail_core}'
    check (algorithms <@ array['unirail_core', 'quantum_ai']::text[]),
  timeframes text[] not null default '{15,60}'
    check (timeframes <@ array['1', '3', '5', '15', '30', '60', '120', '240', '360', '720', 'D', 'W', 'M']::text[]),
  min_score numeric(5, 2) not null default 80 check (min_score between 0 and 100),
  risk_per_trade_pct numeric(6, 3) not null default 1 check (risk_per_trade_pct > 0 and risk_per_trade_pct <= 10),
  max_position_usd numeric not null default 1000 check (max_position_usd > 0),
  leverage integer not null default 1 check (leverage between 1 and 100),
  max_open_positions integer not null default 5 check (max_open_positions between 1 and 1000),
  daily_loss_limit_pct numeric(6, 3) not null default 5
    check (daily_loss_limit_pct > 0 and daily_loss_limit_pct <= 100),
  symbol_allowlist text[] not null default '{}',
  symbol_blocklist text[] not null default '{}',
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
-- The executor's fan-out: users with auto-trade on.
create index trading_preferences_auto_idx on public.trading_preferences (user_id) where auto_trade_enabled;
create trigger trading_preferences_updated_at before update on public.trading_preferences
  for each row execute function public.set_updated_at();
create trigger trading_preferences_audit after insert or update or delete on public.trading_preferences
  for each row execute function public.audit_row_change();

alter table public.trading_preferences enable row level security;
revoke all on table public.trading_preferences from public, anon, authenticated, service_role;
grant select, insert, update, delete on table public.trading_preferences to authenticated;
grant select, insert, update, delete on table public.trading_preferences to service_role;
create policy trading_preferences_owner_reads on public.trading_preferences
  for select to authenticated using (user_id = (select auth.uid()));
create policy trading_preferences_owner_inserts on public.trading_preferences
  for insert to authenticated with check (user_id = (select auth.uid()));
create policy trading_preferences_owner_updates on public.trading_preferences
  for update to authenticated
  using (user_id = (select auth.uid())) with check (user_id = (select auth.uid()));
create policy trading_preferences_owner_deletes on public.trading_preferences
  for delete to authenticated using (user_id = (select auth.uid()));

create table public.execution_orders (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null references auth.users (id) on delete cascade,
  signal_id uuid references public.signals (id) on delete set null,
  account_id uuid references public.user_trading_accounts (id) on delete set null,
  symbol text not null,
  category text not null default 'linear' check (category in ('spot', 'linear', 'inverse')),
  side text not null check (side in ('Buy', 'Sell')),
  order_type text not null default 'Market' check (order_type in ('Market', 'Limit')),
  qty numeric not null check (qty > 0),
  price numeric check (price > 0),
  stop_loss numeric check (stop_loss > 0),
  take_profit numeric check (take_profit > 0),
  leverage integer not null default 1 check (leverage between 1 and 100),
  order_link_id text not null unique check (order_link_id ~ '^[A-Za-z0-9_-]{1,36}$'),
  exchange_order_id text,
  status text not null default 'requested'
    check (status in ('requested', 'placed', 'partially_filled', 'filled', 'cancelled', 'rejected', 'failed')),
  status_reason text,
  filled_qty numeric not null default 0 check (filled_qty >= 0),
  avg_fill_price numeric check (avg_fill_price > 0),
  ret_code integer,
  ret_msg text,
  environment text not null check (environment in ('mainnet', 'testnet', 'demo', 'paper')),
  requested_at timestamptz not null default now(),
  placed_at timestamptz,
  filled_at timestamptz,
  closed_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint execution_orders_once_per_signal unique (user_id, signal_id),
  check (filled_qty <= qty)
);
create index execution_orders_user_created_idx on public.execution_orders (user_id, created_at desc);
-- The order tracker's work list: everything not yet in a final state.
create index execution_orders_open_idx on public.execution_orders (status, updated_at)
  where status in ('requested', 'placed', 'partially_filled');
create trigger execution_orders_updated_at before update on public.execution_orders
  for each row execute function public.set_updated_at();

alter table public.execution_orders enable row level security;
revoke all on table public.execution_orders from public, anon, authenticated, service_role;
grant select on table public.execution_orders to authenticated;
grant select, insert, update, delete on table public.execution_orders to service_role;
create policy execution_orders_owner_reads on public.execution_orders
  for select to authenticated using (user_id = (select auth.uid()));

create table public.trade_logs (
  id bigint generated always as identity primary key,
  user_id uuid not null references auth.users (id) on delete cascade,
  order_id uuid references public.execution_orders (id) on delete cascade,
  level text not null default 'info' check (level in ('debug', 'info', 'warning', 'error')),
  event text not null,
  message text not null default '',
  context jsonb not null default '{}'::jsonb,
  created_at timestamptz not null default now()
);
create index trade_logs_order_idx on public.trade_logs (order_id, created_at);
create index trade_logs_user_created_idx on public.trade_logs (user_id, created_at desc);

alter table public.trade_logs enable row level security;
revoke all on table public.trade_logs from public, anon, authenticated, service_role;
grant select on table public.trade_logs to authenticated;
grant select, insert, update, delete on table public.trade_logs to service_role;
create policy trade_logs_owner_reads on public.trade_logs
  for select to authenticated using (user_id = (select auth.uid()));
