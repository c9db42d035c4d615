-- Disconnecting a trading account never leaves an order silently untracked (issue 9, item 11).
--
-- Deleting an account used to null execution_orders.account_id (on delete set null), and the order
-- tracker joins on the account: its open orders and positions left tracking for ever and still counted
-- against max_open_positions. Now, whoever deletes the account (the trading-account function, or a
-- user's own DELETE through the API):
-- - the delete is refused while the account has open orders or positions, unless the transaction set
--   aitradex.confirm_open_orders to 'on' (the function's "confirm_open_orders": true);
-- - a confirmed delete marks them 'untracked', remembering the status they had, the account and its
--   key hint, with one trade_logs event each; an untracked row is not an open position for any rule;
-- - reconnecting the same exchange account (same environment and key hint) re-links them and the
--   tracker resumes (the application does that in the connect's own transaction).
-- Connecting another API key over the account (another key hint) marks its open rows 'untracked' the
-- same way, without asking: the user chose to trade that environment with another exchange account,
-- and tracking the old one's orders with the new keys would mark them failed or closed wrongly.

alter table public.execution_orders drop constraint execution_orders_status_check;
alter table public.execution_orders
  add constraint execution_orders_status_check check (status in (
    'requested', 'placed', 'partially_filled', 'filled', 'cancelled', 'rejected', 'failed', 'untracked'
  )),
  -- What an untracked row was, and where: restored, and matched, when the account is reconnected.
  add column untracked_from text
    check (untracked_from in ('requested', 'placed', 'partially_filled', 'filled')),
  add column untracked_key_hint text check (char_length(untracked_key_hint) <= 4),
  add column untracked_account_id uuid,
  add constraint execution_orders_untracked_check check (
    (status = 'untracked') = (untracked_from is not null)
    and (status <> 'untracked' or account_id is null)
  );

-- The open rows of one account (the delete's check), and the untracked rows a reconnect looks for.
create index execution_orders_account_open_idx on public.execution_orders (account_id)
  where status in ('requested', 'placed', 'partially_filled') or (status = 'filled' and closed_at is null);
create index execution_orders_untracked_idx on public.execution_orders (user_id, environment)
  where status = 'untracked';

-- The open rows of an account leave it when the account is deleted, or when its API key is replaced by
-- another key (key_hint changes: another exchange account, as far as anyone can tell): they belong to
-- the exchange account that holds them, and tracking them with another account's keys would be wrong.
-- SECURITY DEFINER: a user deleting their own account may not write execution_orders or trade_logs.
create or replace function public.untrack_open_orders() returns trigger
language plpgsql security definer set search_path = '' as $$
declare
  open_count integer;
  moved_count integer;
  what text;
begin
  if tg_op = 'UPDATE' and new.key_hint is not distinct from old.key_hint then
    return new;  -- the same key again (or only the ciphertexts changed): the orders stay where they are
  end if;
  -- Deleting the user cascades to their orders as well: there is nothing left to keep track of.
  if tg_op = 'DELETE' and not exists (select 1 from auth.users u where u.id = old.user_id) then
    return old;
  end if;
  select count(*) into open_count from public.execution_orders o
  where o.account_id = old.id
    and (o.status in ('requested', 'placed', 'partially_filled') or (o.status = 'filled' and o.closed_at is null));
  if open_count > 0 then
    if tg_op = 'DELETE' and coalesce(current_setting('aitradex.confirm_open_orders', true), '') <> 'on' then
      raise exception '% order(s) or position(s) are still open on this trading account', open_count
        using errcode = 'AX409', detail = open_count::text;
    end if;
    what := case when tg_op = 'DELETE' then 'was disconnected' else 'got another API key' end;
    with moved as (
      update public.execution_orders o
      set untracked_from = o.status, status = 'untracked', untracked_key_hint = old.key_hint,
          untracked_account_id = old.id, account_id = null
      where o.account_id = old.id
        and (o.status in ('requested', 'placed', 'partially_filled') or (o.status = 'filled' and o.closed_at is null))
      returning o.id, o.user_id, o.untracked_from, o.symbol
    )
    insert into public.trade_logs (user_id, order_id, level, event, message, context)
    select m.user_id, m.id, 'warning', 'order_untracked',
           'the ' || old.environment || ' account ' || what || ': this ' || m.symbol || ' order (' ||
           m.untracked_from || ') is no longer tracked until the API key ending ' || old.key_hint ||
           ' is connected again',
           jsonb_build_object('status', m.untracked_from, 'account_id', old.id,
                              'environment', old.environment, 'key_hint', old.key_hint)
    from moved m;
    -- How many (one event each), for the application to answer with; transaction-local, like the
    -- confirmation.
    get diagnostics moved_count = row_count;
    perform set_config('aitradex.untracked_orders', moved_count::text, true);
  end if;
  if tg_op = 'DELETE' then
    return old;
  end if;
  return new;
end
$$;
revoke all on function public.untrack_open_orders() from public;

create trigger user_trading_accounts_untrack_orders
  before delete or update of key_hint on public.user_trading_accounts
  for each row execute function public.untrack_open_orders();

-- Rows orphaned before this migration (open, with no account): untracked, with the key hint of the
-- account deleted after they were requested, as the audit log recorded it, so a reconnect finds them.
with orphans as (
  select o.id, o.user_id, o.status, o.symbol, o.environment, deleted.key_hint, deleted.account_id
  from public.execution_orders o
  left join lateral (
    select a.old_values ->> 'key_hint' as key_hint, (a.old_values ->> 'id')::uuid as account_id
    from public.audit_log a
    where a.table_name = 'user_trading_accounts' and a.action = 'DELETE' and a.user_id = o.user_id
      and a.old_values ->> 'environment' = o.environment and a.created_at >= o.requested_at
    order by a.created_at
    limit 1
  ) deleted on true
  where o.account_id is null
    and (o.status in ('requested', 'placed', 'partially_filled') or (o.status = 'filled' and o.closed_at is null))
),
moved as (
  update public.execution_orders o
  set untracked_from = orphans.status, status = 'untracked', untracked_key_hint = orphans.key_hint,
      untracked_account_id = orphans.account_id
  from orphans
  where o.id = orphans.id
  returning o.id, o.user_id, o.symbol, o.untracked_from, o.environment, o.untracked_key_hint
)
insert into public.trade_logs (user_id, order_id, level, event, message, context)
select m.user_id, m.id, 'warning', 'order_untracked',
       'its ' || m.environment || ' account had been disconnected: this ' || m.symbol || ' order (' ||
       m.untracked_from || ') is no longer tracked until the same exchange account is connected again',
       jsonb_build_object('status', m.untracked_from, 'environment', m.environment, 'key_hint', m.untracked_key_hint)
from moved m;
