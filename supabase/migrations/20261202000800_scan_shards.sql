-- Scans sharded across scanner hosts, and one leader per scheduler tick (issue 12, item 5).
--
-- scope names the market the hosts share: the exchange environment ('mainnet', 'testnet', ...), or
-- 'paper:<url>' for a paper exchange (several paper exchanges may replay the same bars into one
-- database, as the test suite's do). Hosts, universes and claims of one scope never meet another's.
--
-- scanner_hosts: each scanner host's lease, renewed while it runs (lib/stores/scan_shards.py). A host
-- whose expires_at has passed is gone: the others take its share of the universe on their next pass.
--
-- scan_universes: the universe of one (scope, timeframe, bar), written once by the first host to reach
-- the bar (insert ... on conflict do nothing) and read back by every other: hosts that read the tickers
-- at different moments still split one and the same list of symbols.
--
-- scan_claims: one row per (scope, timeframe, bar, bucket), inserted on conflict do nothing BEFORE the
-- bucket's symbols are fetched, so exactly one host scans each bucket of each bar. finished_at is set after the
-- scan (by the claim's host only); an unfinished claim whose host's lease has expired is taken over by a
-- live host (host_id changes, takeovers counts it).
--
-- scheduler_ticks: one row per (job, tick) for the jobs that run once per tick deployment-wide (the
-- order tracker, backups): the scheduler that inserts it is that tick's leader for that job.
--
-- scan_runs.host_id: the scanner host whose share a run scanned (null for a scan outside the shards:
-- `aitradex scan`, the scanner function). A sharded run's symbols_requested is that host's share.
--
-- Only the scanner and the scheduler touch them, as service_role: RLS on with no policy, no grant to
-- anon or users.
create table public.scanner_hosts (
  host_id text primary key check (char_length(host_id) between 1 and 200),
  scope text not null check (char_length(scope) between 1 and 300),
  source_address text check (char_length(source_address) <= 64),
  started_at timestamptz not null default clock_timestamp(),
  renewed_at timestamptz not null default clock_timestamp(),
  expires_at timestamptz not null
);
create index scanner_hosts_scope_idx on public.scanner_hosts (scope, expires_at);

create table public.scan_universes (
  scope text not null,
  timeframe text not null,
  bar_time timestamptz not null,
  buckets smallint not null check (buckets between 1 and 4096),
  symbols text[] not null,
  created_by text not null,
  created_at timestamptz not null default clock_timestamp(),
  primary key (scope, timeframe, bar_time)
);
create index scan_universes_created_idx on public.scan_universes (created_at);

create table public.scan_claims (
  scope text not null,
  timeframe text not null,
  bar_time timestamptz not null,
  bucket smallint not null check (bucket >= 0),
  host_id text not null,
  symbols text[] not null default '{}',
  takeovers integer not null default 0 check (takeovers >= 0),
  claimed_at timestamptz not null default clock_timestamp(),
  finished_at timestamptz,
  primary key (scope, timeframe, bar_time, bucket),
  foreign key (scope, timeframe, bar_time)
    references public.scan_universes (scope, timeframe, bar_time) on delete cascade
);

create table public.scheduler_ticks (
  job text not null check (char_length(job) between 1 and 200),
  tick text not null check (char_length(tick) between 1 and 200),
  host_id text not null,
  claimed_at timestamptz not null default clock_timestamp(),
  primary key (job, tick)
);
create index scheduler_ticks_claimed_idx on public.scheduler_ticks (claimed_at);

alter table public.scanner_hosts enable row level security;
alter table public.scan_universes enable row level security;
alter table public.scan_claims enable row level security;
alter table public.scheduler_ticks enable row level security;
revoke all on table public.scanner_hosts, public.scan_universes, public.scan_claims, public.scheduler_ticks
  from public, anon, authenticated, service_role;
grant select, insert, update, delete
  on table public.scanner_hosts, public.scan_universes, public.scan_claims, public.scheduler_ticks
  to service_role;

alter table public.scan_runs add column host_id text;
