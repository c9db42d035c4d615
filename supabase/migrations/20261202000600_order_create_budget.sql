-- Each account's order-create budget, shared by every executor on every host (issue 12, item 3).
-- Bybit allows 10 order creates per rolling second per account (retCode 10006 past that). The budget
-- is a token bucket row per account, taken in one statement (lib/stores/create_budget.py) on the
-- database clock (clock_timestamp()), so executors in any number of processes and hosts share one
-- budget and no clock of theirs matters. tokens may go negative: a taker that finds the bucket empty
-- books the next free slot and is told how long to wait for it (a debt of one token per waiter), so
-- waiters are served in the order they asked. Rows go with their account.
--
-- Only the executor touches it, as service_role: RLS on with no policy, no grant to anon or users.
create table public.exchange_create_budget (
  account_id uuid primary key references public.user_trading_accounts (id) on delete cascade,
  tokens double precision not null,
  refilled_at timestamptz not null default clock_timestamp()
);
alter table public.exchange_create_budget enable row level security;
revoke all on table public.exchange_create_budget from public, anon, authenticated, service_role;
grant select, insert, update, delete on table public.exchange_create_budget to service_role;
