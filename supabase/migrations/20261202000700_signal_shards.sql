-- One signal fanned out by executors on several hosts (issue 12, item 2).
-- A signal with many eligible users is split into shards (a stable hash of user_id mod 64, computed by
-- the executor: lib/services/execution/shards.py); the executor that claims the signal writes one row
-- per non-empty shard, and every executor on every host claims shards here (FOR UPDATE SKIP LOCKED),
-- each under a lease on the database clock that its holder renews while it works. A lease that runs
-- out (its host died) lets another executor take the shard over and resume it. The signal is marked
-- executed or skipped by whoever finishes its last shard. Rows go with their signal.
--
-- Only the executor touches it, as service_role: RLS on with no policy, no grant to anon or users.
create table public.signal_shards (
  signal_id uuid not null references public.signals (id) on delete cascade,
  shard smallint not null check (shard >= 0),
  users integer not null check (users >= 0),
  status text not null default 'new' check (status in ('new', 'processing', 'done')),
  claimed_by text,
  claimed_at timestamptz,
  lease_until timestamptz,
  done_at timestamptz,
  primary key (signal_id, shard)
);
-- The claim looks only at shards not done yet.
create index signal_shards_open on public.signal_shards (signal_id) where status <> 'done';
alter table public.signal_shards enable row level security;
revoke all on table public.signal_shards from public, anon, authenticated, service_role;
grant select, insert, update, delete on table public.signal_shards to service_role;
