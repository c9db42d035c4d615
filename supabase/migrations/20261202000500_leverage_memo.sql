-- The leverage each account was last set to per symbol (issue 12, item 4): an executor sets leverage
-- once per (account, symbol, leverage) and remembers it here, so every executor on every host shares
-- the memo and a new process does not set it again. key_fingerprint (a SHA-256 prefix of the API key,
-- never the key) ties a row to the keys it was set with: keys connected again for another exchange
-- account make the row stale, and the next order sets leverage again. Rows go with their account.
--
-- Only the executor touches it, as service_role: RLS on with no policy, no grant to anon or users.
create table public.exchange_leverage_memo (
  account_id uuid not null references public.user_trading_accounts (id) on delete cascade,
  symbol text not null check (char_length(symbol) between 1 and 40),
  leverage integer not null check (leverage between 1 and 200),
  key_fingerprint text not null check (char_length(key_fingerprint) between 1 and 64),
  set_at timestamptz not null default now(),
  primary key (account_id, symbol)
);
alter table public.exchange_leverage_memo enable row level security;
revoke all on table public.exchange_leverage_memo from public, anon, authenticated, service_role;
grant select, insert, update, delete on table public.exchange_leverage_memo to service_role;
