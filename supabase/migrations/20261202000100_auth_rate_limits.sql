-- Counters of the local auth server's abuse limits (sign-ins and sign-ups per IP address and per
-- email, issue 11 section 1). Kept in Postgres, not in a process, so several functions workers count
-- together: one upsert per attempt and bucket (lib/stores/auth.py). Fixed windows: a bucket's count
-- starts again at 1 once its window has passed.
--
-- Only the auth server touches it, on the owner's connection (as GoTrue uses its own privileged role):
-- RLS on with no policy, and no grant to any API role.
create table public.auth_rate_limits (
  bucket text primary key check (char_length(bucket) <= 400),
  window_start timestamptz not null,
  hits integer not null check (hits > 0)
);
alter table public.auth_rate_limits enable row level security;
revoke all on public.auth_rate_limits from anon, authenticated, service_role;

-- Old windows are dead weight: the auth server deletes the expired ones now and then.
create index auth_rate_limits_window_idx on public.auth_rate_limits (window_start);
